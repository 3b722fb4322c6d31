/* Read-only formats through the libyal libraries (libvhdi for VHDX,
 * libqcow for qcow version 1): what scuse does not write itself. A write
 * is refused at open with a message that says to put a qcow2 overlay on
 * the image.
 *
 * A libyal file handle is not thread-safe (each read takes the handle's
 * lock for writing, and seeks): the driver keeps a pool of handles on the
 * same file, opened as concurrent readers need them, up to `handles`
 * (open option, default YAL_HANDLES_DEFAULT), and a reader borrows one
 * for the time of its read. tests/unit/test_yal.c measures one handle
 * against several. */
#ifndef SCUSE_YAL_H
#define SCUSE_YAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "blk/driver.h"

#define YAL_HANDLES_DEFAULT 4
#define YAL_HANDLES_MAX 64

struct yal_pool;

/* One library's way to open, read and close a handle on bs->path. */
struct yal_ops {
    const char *lib;                   /* "libvhdi", for messages */
    int (*open)(struct yal_pool *p, void **h, struct scuse_err *err);
    void (*close)(void *h);
    /* Read len bytes at off; -errno with the library's reason in why. */
    int (*read)(void *h, void *buf, size_t len, uint64_t off, char *why, size_t whylen);
};

struct yal_pool {
    const char *path;
    const struct yal_ops *ops;
    void *ctx;                         /* the driver's (a password...) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    void **all;                        /* every handle opened */
    void **idle;                       /* the ones not in use */
    unsigned n, nidle, max, opening;
};

/* The pool with its first handle open (which validates the file). */
int yal_pool_init(struct yal_pool *p, const char *path, const struct yal_ops *ops, void *ctx,
                  unsigned max, void **first, struct scuse_err *err);
void yal_pool_destroy(struct yal_pool *p);
int yal_read(struct yal_pool *p, uint64_t off, const struct iov_view *v, struct scuse_err *err);

/* The `handles` open option (1..YAL_HANDLES_MAX). */
int yal_handles_opt(struct blk_node *bs, unsigned *out, struct scuse_err *err);

/* A read-write open of a format scuse only reads. */
int yal_refuse_write(struct blk_node *bs, const char *fmt, struct scuse_err *err);

/* A libyal error chain as one line ("a; b; c"), at most len bytes. */
void yal_one_line(char *s);

#endif
