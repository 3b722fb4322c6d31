/* Error reporting: internal calls return 0 or a negative errno; open and
 * configuration paths also fill a scuse_err with a message that names the
 * file and the field, so the user sees one precise line. */
#ifndef SCUSE_ERR_H
#define SCUSE_ERR_H

#include <stddef.h>

#define SCUSE_ERR_MAX 1024

struct scuse_err {
    int code;                  /* negative errno of the first error, 0 if none */
    char msg[SCUSE_ERR_MAX];   /* human-readable, without trailing newline */
};

/* Record an error (only the first one is kept) and return -errnum so that
 * callers can write `return err_set(err, -EINVAL, "...")`. err may be NULL. */
int err_set(struct scuse_err *err, int neg_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the existing message with context ("'a.qcow2': ..."). */
void err_prefix(struct scuse_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void err_clear(struct scuse_err *err);

#endif
