/* The handle pool of the libyal formats (yal.h explains why). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yal/yal.h"

void yal_one_line(char *s)
{
    /* libyal chains its messages one per line, each ending in a period,
     * innermost last: line breaks become single spaces (never longer
     * than the input: the buffer may be full) */
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
            if (o && s[o - 1] != ' ')
                s[o++] = ' ';
            continue;
        }
        s[o++] = s[i];
    }
    while (o && (s[o - 1] == ' ' || s[o - 1] == ';'))
        o--;
    s[o] = '\0';
}

int yal_pool_init(struct yal_pool *p, const char *path, const struct yal_ops *ops, void *ctx,
                  unsigned max, void **first, struct scuse_err *err)
{
    memset(p, 0, sizeof(*p));
    p->path = path;
    p->ops = ops;
    p->ctx = ctx;
    p->max = max;
    p->all = calloc(max, sizeof(*p->all));
    p->idle = calloc(max, sizeof(*p->idle));
    if (!p->all || !p->idle) {
        free(p->all);
        free(p->idle);
        return err_set(err, -ENOMEM, "out of memory");
    }
    int r = ops->open(p, &p->all[0], err);
    if (r < 0) {
        free(p->all);
        free(p->idle);
        p->all = p->idle = NULL;
        return r;
    }
    p->n = p->nidle = 1;
    p->idle[0] = p->all[0];
    *first = p->all[0];
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    return 0;
}

void yal_pool_destroy(struct yal_pool *p)
{
    if (!p->all)
        return;
    for (unsigned i = 0; i < p->n; i++)
        p->ops->close(p->all[i]);
    free(p->all);
    free(p->idle);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    p->all = p->idle = NULL;
}

/* An idle handle, a new one while there is room, else wait for one. */
static int borrow(struct yal_pool *p, void **h, struct scuse_err *err)
{
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->nidle) {
            *h = p->idle[--p->nidle];
            pthread_mutex_unlock(&p->lock);
            return 0;
        }
        if (p->n + p->opening < p->max)
            break;
        pthread_cond_wait(&p->cond, &p->lock);
    }
    p->opening++;
    pthread_mutex_unlock(&p->lock);
    void *nh = NULL;
    int r = p->ops->open(p, &nh, err);
    pthread_mutex_lock(&p->lock);
    p->opening--;
    if (r == 0)
        p->all[p->n++] = nh;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    *h = nh;
    return r;
}

static void give_back(struct yal_pool *p, void *h)
{
    pthread_mutex_lock(&p->lock);
    p->idle[p->nidle++] = h;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

int yal_read(struct yal_pool *p, uint64_t off, const struct iov_view *v, struct scuse_err *err)
{
    void *h;
    int r = borrow(p, &h, err);
    if (r < 0)
        return r;
    char why[512] = "";
    size_t done = 0;
    for (int i = 0; r == 0 && done < v->len && i < v->cnt; i++) {
        /* the view's segments, from v->skip in the first */
        const struct iovec *seg = &v->iov[i];
        size_t skip = i == 0 ? v->skip : 0;
        size_t n = seg->iov_len - skip;
        if (n > v->len - done)
            n = v->len - done;
        if (n == 0)
            continue;
        r = p->ops->read(h, (char *)seg->iov_base + skip, n, off + done, why, sizeof(why));
        done += n;
    }
    give_back(p, h);
    if (r < 0) {
        yal_one_line(why);
        return err_set(err, r, "'%s': %s read of %zu bytes at %" PRIu64 " failed: %s", p->path,
                       p->ops->lib, v->len, off, why[0] ? why : strerror(-r));
    }
    return 0;
}

int yal_handles_opt(struct blk_node *bs, unsigned *out, struct scuse_err *err)
{
    const char *v = blk_open_opt(bs, "handles");
    *out = YAL_HANDLES_DEFAULT;
    if (!v)
        return 0;
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || end == v || *end || n < 1 || n > YAL_HANDLES_MAX)
        return err_set(err, -EINVAL, "'%s': option handles: '%s' is not a number from 1 to %d",
                       bs->path, v, YAL_HANDLES_MAX);
    *out = (unsigned)n;
    return 0;
}

int yal_refuse_write(struct blk_node *bs, const char *fmt, struct scuse_err *err)
{
    return err_set(err, -EROFS, "'%s': scuse reads %s images but does not write them; put a qcow2 "
                   "overlay on it and write that: scuse create -f qcow2 -b %s -F %s OVERLAY.qcow2",
                   bs->path, fmt, bs->filename, fmt);
}
