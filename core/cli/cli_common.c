#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int cli_parse_size(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s)
        return -EINVAL;
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'b': case 'B': end++; break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    case 'p': case 'P': shift = 50; end++; break;
    case 'e': case 'E': shift = 60; end++; break;
    default: return -EINVAL;
    }
    if (*end)
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = (uint64_t)v << shift;
    return 0;
}

void cli_human_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024.0 && u < 6) {
        v /= 1024.0;
        u++;
    }
    /* Three significant digits, as qemu-img prints them. */
    snprintf(buf, len, "%0.3g %s", v, units[u]);
}

int cli_fail(int code, const char *cmd, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (code == EXIT_USAGE)
        fprintf(stderr, "scuse %s: %s (see 'scuse %s --help')\n", cmd, msg, cmd);
    else
        fprintf(stderr, "scuse %s: %s\n", cmd, msg);
    return code;
}

int cli_open(const char *cmd, const char *file, const char *fmt, unsigned flags,
             const struct blk_opts *opts, struct blk_node **out)
{
    struct scuse_err err = { 0 };
    int r = blk_open(file, fmt, flags, opts, out, &err);
    if (r < 0) {
        cli_fail(EXIT_IMAGE, cmd, "%s", err.msg[0] ? err.msg : strerror(-r));
        return r;
    }
    return 0;
}

int cli_output_format(const char *arg)
{
    if (strcmp(arg, "human") == 0)
        return 0;
    if (strcmp(arg, "json") == 0)
        return 1;
    return -1;
}
