#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(struct scuse_err *err, int neg_errno, const char *fmt, ...)
{
    if (err && err->code == 0 && err->msg[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->code = neg_errno;
    }
    return neg_errno;
}

void err_prefix(struct scuse_err *err, const char *fmt, ...)
{
    if (!err)
        return;
    char pre[SCUSE_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(pre, sizeof(pre), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    /* Truncation keeps the prefix, which names the file. */
    size_t plen = strnlen(pre, sizeof(err->msg) - 1);
    size_t mlen = strnlen(err->msg, sizeof(err->msg));
    if (plen + mlen > sizeof(err->msg) - 1)
        mlen = sizeof(err->msg) - 1 - plen;
    memmove(err->msg + plen, err->msg, mlen);
    memcpy(err->msg, pre, plen);
    err->msg[plen + mlen] = '\0';
}

void err_clear(struct scuse_err *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}
