/* Shared by check.c and check_walk.c: the state of one check pass. */
#ifndef SCUSE_QCOW2_CHECK_INT_H
#define SCUSE_QCOW2_CHECK_INT_H

#include "qcow2/check.h"

struct ck {
    struct blk_node *bs;
    struct qcow2_state *s;
    struct qcow2_rd rd;
    struct blk_check_result *res;
    unsigned fix;              /* BLK_CHECK_FIX_* */
    bool quiet;                /* no messages (repair at open) */
    bool data_file;            /* guest data lives in an external file */
    bool rebuild;              /* the refcount structure must be rewritten */
    uint64_t cs;
    uint64_t file_size;
    uint64_t max_ref;          /* largest expected refcount we can count to */
    uint32_t *want;            /* expected refcount of each host cluster */
    uint64_t n;                /* entries in want */
    uint64_t highest;          /* last cluster with a stored or expected refcount */
    uint8_t *l2buf;            /* one cluster */
};

/* check.c */
void ck_say(struct ck *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int ck_inc(struct ck *c, uint64_t off, uint64_t size);
int ck_walk_l1(struct ck *c, uint64_t l1_off, uint64_t l1_size, bool active);

/* check_walk.c */
int ck_walk_snapshots(struct ck *c);
int ck_walk_bitmaps(struct ck *c);
/* COPIED flags of the active L1 and L2 tables against the stored
 * refcounts; repaired with FIX_ERRORS, or with FIX_LEAKS alone when
 * nothing else is wrong. */
int ck_check_copied(struct ck *c);

#endif
