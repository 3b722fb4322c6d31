/* The only place that issues syscalls on image files. Reads are complete
 * (short reads retried); past the end of the file they return zeros, as a
 * disk past its last written sector does. */
#ifndef SCUSE_FILE_H
#define SCUSE_FILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/iov.h"

/* Read exactly len bytes at off; 0 on success, -EIO if the file ends first
 * (metadata must exist), other negative errno on failure. */
int file_pread_exact(int fd, void *buf, size_t len, uint64_t off);
/* Read into a view, zero-filling past EOF. */
int file_preadv_view(int fd, const struct iov_view *v, uint64_t off);
/* Write exactly len bytes. */
int file_pwrite_exact(int fd, const void *buf, size_t len, uint64_t off);
/* Write a whole view at off. */
int file_pwritev_view(int fd, const struct iov_view *v, uint64_t off);
int file_sync(int fd);
/* Deallocate (reads return zeros afterwards); -ENOTSUP where unsupported. */
int file_punch_hole(int fd, uint64_t off, uint64_t len);
/* Zero a range without writing data blocks where the filesystem can. */
int file_zero_range(int fd, uint64_t off, uint64_t len);
int file_size(int fd, uint64_t *size);
/* Bytes the file occupies on disk (st_blocks * 512). */
int file_allocated(int fd, uint64_t *bytes);
/* Sparse map: set *data to whether off starts a data run, *pnum to its
 * length (at most len). Filesystems without SEEK_DATA report all data. */
int file_extent(int fd, uint64_t off, uint64_t len, bool *data, uint64_t *pnum);

#endif
