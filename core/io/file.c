#define _GNU_SOURCE
#include "io/file.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

int file_pread_exact(int fd, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

#define FILE_IOV_BATCH 64

/* preadv/pwritev over a whole view, in batches, retrying short transfers.
 * A read that meets EOF zero-fills the rest; a write that makes no
 * progress is an error. */
static int file_rw_view(int fd, const struct iov_view *v, uint64_t off, bool write)
{
    struct iov_view rest = *v;
    while (rest.len > 0) {
        struct iovec batch[FILE_IOV_BATCH];
        size_t want;
        int cnt = iov_view_to_iovec(&rest, batch, FILE_IOV_BATCH, &want);
        ssize_t n = write ? pwritev(fd, batch, cnt, (off_t)off) : preadv(fd, batch, cnt, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0) {
            if (write)
                return -EIO;
            iov_view_memset(&rest, 0, 0, rest.len);
            return 0;
        }
        rest = iov_view_sub(&rest, (size_t)n, rest.len - (size_t)n);
        off += (uint64_t)n;
    }
    return 0;
}

int file_preadv_view(int fd, const struct iov_view *v, uint64_t off)
{
    return file_rw_view(fd, v, off, false);
}

int file_pwrite_exact(int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int file_pwritev_view(int fd, const struct iov_view *v, uint64_t off)
{
    return file_rw_view(fd, v, off, true);
}

int file_sync(int fd)
{
    while (fdatasync(fd) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

static int falloc(int fd, int mode, uint64_t off, uint64_t len)
{
    while (fallocate(fd, mode, (off_t)off, (off_t)len) < 0) {
        if (errno == EINTR)
            continue;
        return (errno == EOPNOTSUPP || errno == ENOSYS) ? -ENOTSUP : -errno;
    }
    return 0;
}

int file_punch_hole(int fd, uint64_t off, uint64_t len)
{
    return falloc(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
}

int file_zero_range(int fd, uint64_t off, uint64_t len)
{
    return falloc(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len);
}

int file_size(int fd, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(fd, 0, SEEK_END);
        if (end < 0)
            return -errno;
        *size = (uint64_t)end;
    } else {
        *size = (uint64_t)st.st_size;
    }
    return 0;
}

int file_allocated(int fd, uint64_t *bytes)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    *bytes = (uint64_t)st.st_blocks * 512;
    return 0;
}

int file_extent(int fd, uint64_t off, uint64_t len, bool *data, uint64_t *pnum)
{
    off_t d = lseek(fd, (off_t)off, SEEK_DATA);
    if (d < 0) {
        if (errno == ENXIO) {          /* a hole up to EOF */
            *data = false;
            *pnum = len;
            return 0;
        }
        *data = true;                  /* no SEEK_DATA here: say data */
        *pnum = len;
        return 0;
    }
    if ((uint64_t)d > off) {
        *data = false;
        *pnum = (uint64_t)d - off < len ? (uint64_t)d - off : len;
        return 0;
    }
    off_t h = lseek(fd, (off_t)off, SEEK_HOLE);
    *data = true;
    if (h < 0 || (uint64_t)h <= off)
        *pnum = len;
    else
        *pnum = (uint64_t)h - off < len ? (uint64_t)h - off : len;
    return 0;
}
