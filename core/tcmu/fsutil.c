#define _GNU_SOURCE
#include "tcmu/fsutil.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tcmu_read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, len - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got == len - 1) {
            char extra;
            ssize_t more = read(fd, &extra, 1);
            close(fd);
            buf[got] = '\0';
            return more > 0 ? -E2BIG : (int)got;
        }
    }
    close(fd);
    buf[got] = '\0';
    return (int)got;
}

int tcmu_read_line(const char *path, char *buf, size_t len)
{
    int n = tcmu_read_file(path, buf, len);
    if (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    return n;
}

int tcmu_write_file(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t n = strlen(value);
    ssize_t w;
    do {
        w = write(fd, value, n);
    } while (w < 0 && errno == EINTR);
    int e = w < 0 ? errno : (size_t)w != n ? EIO : 0;
    if (close(fd) < 0 && !e)
        e = errno;
    return -e;
}

bool tcmu_parse_u64(const char *s, unsigned long long *out)
{
    if (!isdigit((unsigned char)s[0]))
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end || end == s)
        return false;
    *out = v;
    return true;
}

int tcmu_pathf(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : n;
}
