/* Why an operation on a qcow2 image failed, recorded with the call that
 * failed. The read path and the data writes carry the caller's err; the
 * metadata writer's functions run under the metadata lock, whose holder
 * lends its err to the writer state for as long as it holds the lock. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "qcow2/qcow2.h"
#include "util/log.h"

static void note(struct qcow2_state *s, struct scuse_err *err, const char *fmt, va_list ap)
{
    char msg[768];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (err)
        err_set(err, -EIO, "'%s': %s", s->path, msg);
    else
        log_error("'%s': %s", s->path, msg); /* no caller to tell (closing) */
}

void qcow2_note(struct qcow2_state *s, struct scuse_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    note(s, err, fmt, ap);
    va_end(ap);
}

void qcow2_note_locked(struct qcow2_state *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    note(s, s->w.err, fmt, ap);
    va_end(ap);
}
