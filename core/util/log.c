#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Set once from main() before any thread starts; read-only afterwards. */
static enum log_level cur_level = LOG_LVL_WARN;

void log_set_level(enum log_level lvl) { cur_level = lvl; }
enum log_level log_get_level(void) { return cur_level; }

/* Per thread, so concurrent commands never see each other's errors. */
static __thread char last_error[1024];

const char *log_last_error(void) { return last_error; }
void log_clear_last_error(void) { last_error[0] = '\0'; }

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const char *const names[] = { "off", "error", "warning", "info", "debug" };
    if (lvl > cur_level && lvl != LOG_LVL_ERROR)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (lvl == LOG_LVL_ERROR) {
        memccpy(last_error, line, 0, sizeof(last_error) - 1);
        last_error[sizeof(last_error) - 1] = 0;
    }
    if (lvl > cur_level)
        return;
    /* One fputs per message keeps lines from different threads whole. */
    char out[2100];
    snprintf(out, sizeof(out), "scuse: %s: %s\n", names[lvl], line);
    fputs(out, stderr);
}
