#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Set once from main() before any thread starts; read-only afterwards. */
static enum log_level cur_level = LOG_LVL_WARN;

void log_set_level(enum log_level lvl) { cur_level = lvl; }
enum log_level log_get_level(void) { return cur_level; }

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const char *const names[] = { "off", "error", "warning", "info", "debug" };
    if (lvl > cur_level)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One fputs per message keeps lines from different threads whole. */
    char out[2100];
    snprintf(out, sizeof(out), "scuse: %s: %s\n", names[lvl], line);
    fputs(out, stderr);
}
