#define _GNU_SOURCE
#include "blk/copy.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk/driver.h"
#include "io/file.h"

/* A worker claims the next window, then walks block status inside it, so
 * metadata lookups and data reads of different windows overlap. */
#define COPY_WINDOW (2u << 20)
#define ZERO_GRAIN 4096u   /* like qemu-img's default -S 4k */

struct copy_job {
    struct blk_node *src;
    int fd;
    struct blk_node *dst;   /* instead of fd, for blk_copy_to_node */
    const struct blk_copy_opts *o;
    pthread_mutex_t lock;
    uint64_t next;          /* next unclaimed window start */
    uint64_t done;          /* bytes finished, for progress */
    int error;              /* first failure */
    struct blk_copy_failure failure;
};

/* The first failure of the job, with the reason its call recorded (empty
 * for a write to a plain file: the caller names that file itself). */
static void fail(struct copy_job *j, int r, uint64_t off, bool writing, const struct scuse_err *e)
{
    pthread_mutex_lock(&j->lock);
    if (!j->error) {
        j->error = r;
        j->failure.off = off;
        j->failure.writing = writing;
        snprintf(j->failure.msg, sizeof(j->failure.msg), "%s",
                 e ? e->msg : "");
    }
    pthread_mutex_unlock(&j->lock);
}

static bool is_zero(const char *p, size_t n)
{
    return p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
}

static int put(struct copy_job *j, const char *buf, size_t len, uint64_t off, struct scuse_err *e)
{
    if (j->dst)
        return blk_pwrite(j->dst, off, buf, len, 0, e);
    return file_pwrite_exact(j->fd, buf, len, off);
}

/* Write buf (guest bytes at off) leaving out all-zero grains when the
 * destination already reads as zeros. */
static int write_sparse(struct copy_job *j, const char *buf, size_t len, uint64_t off,
                        struct scuse_err *e)
{
    if (!j->o->dst_is_zeroed)
        return put(j, buf, len, off, e);
    size_t i = 0;
    while (i < len) {
        size_t g = len - i < ZERO_GRAIN ? len - i : ZERO_GRAIN;
        if (is_zero(buf + i, g)) {
            i += g;
            continue;
        }
        size_t s = i;
        while (i < len) {
            g = len - i < ZERO_GRAIN ? len - i : ZERO_GRAIN;
            if (is_zero(buf + i, g))
                break;
            i += g;
        }
        int r = put(j, buf + s, i - s, off + s, e);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Compressed copy of [start, end) (cluster aligned, but for the image's
 * last cluster): clusters that read as zeros are left out. */
static int copy_window_compressed(struct copy_job *j, char *buf, uint64_t start, uint64_t end,
                                  struct scuse_err *e)
{
    uint64_t cs = j->dst->cluster_size;
    for (uint64_t off = start; off < end; off += cs) {
        size_t len = end - off < cs ? (size_t)(end - off) : (size_t)cs;
        bool data = false;
        for (uint64_t p = off; p < off + len && !data;) {
            uint64_t n;
            struct blk_status st;
            int r = blk_block_status(j->src, p, off + len - p, &n, &st, e);
            if (r < 0) {
                fail(j, r, p, false, e);
                return r;
            }
            data = (st.flags & BLK_STATUS_DATA) || !(st.flags & BLK_STATUS_ZERO);
            p += n;
        }
        if (!data)
            continue;
        int r = blk_pread(j->src, off, buf, len, e);
        if (r < 0) {
            fail(j, r, off, false, e);
            return r;
        }
        if (is_zero(buf, len))
            continue;
        struct iovec one;
        struct iov_view v = iov_view_of_buf(&one, buf, len);
        r = blk_write_compressed(j->dst, off, &v, e);
        if (r < 0) {
            fail(j, r, off, true, e);
            return r;
        }
    }
    return 0;
}

/* Returns 0, or fails the job itself with the exact offset and side. */
static int copy_window(struct copy_job *j, char *buf, uint64_t start, uint64_t end,
                       struct scuse_err *e)
{
    static const char zeros[ZERO_GRAIN];
    uint64_t off = start;
    while (off < end) {
        /* Gather the longest data run; skip zero runs. */
        uint64_t run = 0;
        while (off + run < end) {
            uint64_t n;
            struct blk_status st;
            int r = blk_block_status(j->src, off + run, end - off - run, &n, &st, e);
            if (r < 0) {
                fail(j, r, off + run, false, e);
                return r;
            }
            if (!(st.flags & BLK_STATUS_DATA) && (st.flags & BLK_STATUS_ZERO)) {
                if (run > 0)
                    break;
                if (!j->o->dst_is_zeroed && j->dst) {
                    r = blk_write_zeroes(j->dst, off, n, 0, e);
                    if (r < 0) {
                        fail(j, r, off, true, e);
                        return r;
                    }
                } else if (!j->o->dst_is_zeroed) {
                    for (uint64_t z = 0; z < n; z += ZERO_GRAIN) {
                        size_t zl = n - z < ZERO_GRAIN ? (size_t)(n - z) : ZERO_GRAIN;
                        r = file_pwrite_exact(j->fd, zeros, zl, off + z);
                        if (r < 0) {
                            fail(j, r, off + z, true, e);
                            return r;
                        }
                    }
                }
                off += n;
                continue;
            }
            run += n;
        }
        if (run == 0)
            continue;
        int r = blk_pread(j->src, off, buf, (size_t)run, e);
        if (r < 0) {
            fail(j, r, off, false, e);
            return r;
        }
        r = write_sparse(j, buf, (size_t)run, off, e);
        if (r < 0) {
            fail(j, r, off, true, e);
            return r;
        }
        off += run;
    }
    return 0;
}

static void *copy_worker(void *arg)
{
    struct copy_job *j = arg;
    char *buf = aligned_alloc(4096, COPY_WINDOW);
    if (!buf) {
        fail(j, -ENOMEM, 0, false, NULL);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&j->lock);
        uint64_t start = j->next;
        bool stop = j->error || start >= j->src->size;
        if (!stop)
            j->next = start + COPY_WINDOW < j->src->size ? start + COPY_WINDOW : j->src->size;
        uint64_t end = j->next;
        pthread_mutex_unlock(&j->lock);
        if (stop)
            break;
        struct scuse_err e = { 0 };
        int r = j->o->compress ? copy_window_compressed(j, buf, start, end, &e)
                               : copy_window(j, buf, start, end, &e);
        if (r < 0)
            break;
        if (j->o->progress) {
            pthread_mutex_lock(&j->lock);
            j->done += end - start;
            j->o->progress(j->o->progress_ctx, j->done, j->src->size);
            pthread_mutex_unlock(&j->lock);
        }
    }
    free(buf);
    return NULL;
}

static int run_copy(struct copy_job *jp, struct blk_copy_failure *f);

int blk_copy_to_fd(struct blk_node *src, int dst_fd, const struct blk_copy_opts *o,
                   struct blk_copy_failure *f)
{
    struct copy_job j = { .src = src, .fd = dst_fd, .o = o };
    return run_copy(&j, f);
}

int blk_copy_to_node(struct blk_node *src, struct blk_node *dst, const struct blk_copy_opts *o,
                     struct blk_copy_failure *f)
{
    struct blk_copy_opts oc = *o;
    if (dst->compressed_only)
        oc.compress = true;
    o = &oc;
    struct copy_job j = { .src = src, .fd = -1, .dst = dst, .o = o };
    if (o->compress && (!blk_can_compress(dst) ||
                        COPY_WINDOW % dst->cluster_size))
        return -ENOTSUP;
    if (dst->size < src->size)
        return -EINVAL;
    return run_copy(&j, f);
}

static int run_copy(struct copy_job *jp, struct blk_copy_failure *f)
{
    struct copy_job j = *jp;
    const struct blk_copy_opts *o = j.o;
    pthread_mutex_init(&j.lock, NULL);
    unsigned n = o->threads;
    if (n == 0) {
        /* one per CPU, and at least 8 in flight as qemu-img convert keeps:
         * the workers block in page-cache writes (dirty throttling) more
         * than they compute, measured on 2 CPUs (bench/vhd.sh) */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus > 8 ? (unsigned)cpus : 8;
    }
    if (n > 16)
        n = 16;
    pthread_t tid[16];
    unsigned started = 0;
    for (; started < n; started++)
        if (pthread_create(&tid[started], NULL, copy_worker, &j) != 0)
            break;
    if (started == 0)
        copy_worker(&j);
    for (unsigned i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    pthread_mutex_destroy(&j.lock);
    if (j.error && f)
        *f = j.failure;
    return j.error;
}
