/* A window onto a caller-owned iovec array. Views are values: slicing one
 * never allocates or copies data, so the data path can hand the transport's
 * buffers (TCMU data area, guest RAM) straight down to the image file. */
#ifndef SCUSE_IOV_H
#define SCUSE_IOV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

struct iov_view {
    const struct iovec *iov; /* first iovec that holds bytes of the view */
    int cnt;                 /* iovecs available from iov on */
    size_t skip;             /* bytes of iov[0] before the view starts */
    size_t len;              /* bytes in the view */
};

/* View over iov[0..cnt) limited to len bytes (len must not exceed the sum). */
struct iov_view iov_view_make(const struct iovec *iov, int cnt, size_t len);
/* View over one buffer; *slot provides the storage for the single iovec. */
struct iov_view iov_view_of_buf(struct iovec *slot, void *buf, size_t len);
/* Bytes [off, off+len) of v, as a new view. */
struct iov_view iov_view_sub(const struct iov_view *v, size_t off, size_t len);

void iov_view_memset(const struct iov_view *v, size_t off, int c, size_t len);
void iov_view_from_buf(const struct iov_view *v, size_t off, const void *buf, size_t len);
void iov_view_to_buf(const struct iov_view *v, size_t off, void *buf, size_t len);
/* Pointer to [off, off+len) if it lies in one iovec, else NULL. */
void *iov_view_contig(const struct iov_view *v, size_t off, size_t len);
/* Fill out[0..max) with iovecs for a prefix of v; returns the count and
 * sets *bytes to how many bytes of v they cover. */
int iov_view_to_iovec(const struct iov_view *v, struct iovec *out, int max, size_t *bytes);
bool iov_view_is_zero(const struct iov_view *v);

#endif
