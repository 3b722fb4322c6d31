#include "util/iov.h"

#include <string.h>

struct iov_view iov_view_make(const struct iovec *iov, int cnt, size_t len)
{
    struct iov_view v = { iov, cnt, 0, len };
    /* Drop leading empty iovecs so iov[0] always has bytes when len > 0. */
    while (v.cnt > 0 && v.iov->iov_len == 0) {
        v.iov++;
        v.cnt--;
    }
    return v;
}

struct iov_view iov_view_of_buf(struct iovec *slot, void *buf, size_t len)
{
    slot->iov_base = buf;
    slot->iov_len = len;
    struct iov_view v = { slot, 1, 0, len };
    return v;
}

struct iov_view iov_view_sub(const struct iov_view *v, size_t off, size_t len)
{
    struct iov_view r = { v->iov, v->cnt, v->skip + off, len };
    while (r.cnt > 0 && r.skip >= r.iov->iov_len) {
        r.skip -= r.iov->iov_len;
        r.iov++;
        r.cnt--;
    }
    return r;
}

/* Walk [off, off+len) of v calling fn on each contiguous piece. */
#define IOV_WALK(v, off, len, piece_ptr, piece_len, body)                         \
    do {                                                                          \
        struct iov_view w_ = iov_view_sub((v), (off), (len));                     \
        size_t left_ = (len), skip_ = w_.skip, done_ = 0;                         \
        for (int i_ = 0; i_ < w_.cnt && left_ > 0; i_++) {                        \
            size_t avail_ = w_.iov[i_].iov_len - skip_;                           \
            size_t piece_len = avail_ < left_ ? avail_ : left_;                   \
            if (piece_len == 0) {                                                 \
                skip_ = 0;                                                        \
                continue;                                                         \
            }                                                                     \
            char *piece_ptr = (char *)w_.iov[i_].iov_base + skip_;                \
            body;                                                                 \
            done_ += piece_len;                                                   \
            left_ -= piece_len;                                                   \
            skip_ = 0;                                                            \
        }                                                                         \
        (void)done_;                                                              \
    } while (0)

void iov_view_memset(const struct iov_view *v, size_t off, int c, size_t len)
{
    IOV_WALK(v, off, len, p, n, memset(p, c, n));
}

void iov_view_from_buf(const struct iov_view *v, size_t off, const void *buf, size_t len)
{
    const char *src = buf;
    IOV_WALK(v, off, len, p, n, { memcpy(p, src, n); src += n; });
}

void iov_view_to_buf(const struct iov_view *v, size_t off, void *buf, size_t len)
{
    char *dst = buf;
    IOV_WALK(v, off, len, p, n, { memcpy(dst, p, n); dst += n; });
}

void *iov_view_contig(const struct iov_view *v, size_t off, size_t len)
{
    struct iov_view w = iov_view_sub(v, off, len);
    if (w.cnt <= 0)
        return NULL;
    if (w.iov[0].iov_len - w.skip < len)
        return NULL;
    return (char *)w.iov[0].iov_base + w.skip;
}

int iov_view_to_iovec(const struct iov_view *v, struct iovec *out, int max, size_t *bytes)
{
    size_t left = v->len, skip = v->skip;
    int n = 0;
    for (int i = 0; i < v->cnt && left > 0 && n < max; i++) {
        size_t avail = v->iov[i].iov_len - skip;
        if (avail == 0) {
            skip = 0;
            continue;
        }
        size_t take = avail < left ? avail : left;
        out[n].iov_base = (char *)v->iov[i].iov_base + skip;
        out[n].iov_len = take;
        n++;
        left -= take;
        skip = 0;
    }
    *bytes = v->len - left;
    return n;
}

static bool buf_is_zero(const char *p, size_t n)
{
    /* Compare against the first byte, then the buffer against itself. */
    if (n == 0)
        return true;
    if (p[0] != 0)
        return false;
    return memcmp(p, p + 1, n - 1) == 0;
}

bool iov_view_is_zero(const struct iov_view *v)
{
    bool zero = true;
    IOV_WALK(v, 0, v->len, p, n, { if (zero && !buf_is_zero(p, n)) zero = false; });
    return zero;
}
