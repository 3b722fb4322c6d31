/* --log=stderr|syslog|journal, the daemons' common option (cli.h). */
#include <errno.h>
#include <string.h>

#include "cli/cli.h"
#include "util/log.h"

int cli_log_option(int *argc, char **argv, const char *cmd)
{
    const char *want = NULL;
    int n = 0, i = 0;
    for (; i < *argc && strcmp(argv[i], "--") != 0; i++) {
        if (strncmp(argv[i], "--log=", 6) == 0) {
            want = argv[i] + 6;
        } else if (strcmp(argv[i], "--log") == 0) {
            if (i + 1 >= *argc)
                return cli_fail(EXIT_USAGE, cmd, "option '--log' needs a value");
            want = argv[++i];
        } else {
            argv[n++] = argv[i];
        }
    }
    for (; i < *argc; i++)
        argv[n++] = argv[i];
    argv[n] = NULL;
    *argc = n;
    if (!want)
        return EXIT_OK;
    int t = log_parse_target(want);
    if (t < 0)
        return cli_fail(EXIT_USAGE, cmd, "--log '%s': expected stderr, syslog or journal", want);
    int r = log_open((enum log_target)t, "scuse");
    if (r < 0)
        return cli_fail(EXIT_USAGE, cmd, "--log=%s: %s: %s", want,
                        log_socket_path((enum log_target)t), strerror(-r));
    return EXIT_OK;
}
