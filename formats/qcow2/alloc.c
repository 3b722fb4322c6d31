/* Cluster allocation: find a free run from the hint (the first cluster
 * that may be free); clusters no refcount block covers are free, so the
 * search always ends, past the end of the file if need be. Where it meets
 * a missing refcount block it creates one, and where it runs past the
 * refcount table it grows the table; both are written and synced at once,
 * each new block counting itself, in this order:
 *
 *   new block:  write the block (its own refcount set in it), sync, write
 *               the refcount table entry, sync;
 *   new table:  write the new blocks and the new table (all counted in the
 *               new blocks), sync, switch the header fields with a synced
 *               write, then drop the old table's refcounts.
 *
 * A crash anywhere leaves at most leaked clusters. The allocated run's own
 * refcounts go into the cache and reach disk at the next flush, before any
 * L2 entry that points at them. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "qcow2/qcow2.h"

void qcow2_note_end(struct qcow2_state *s, uint64_t end)
{
    if (end > s->meta_end)
        __atomic_store_n(&s->meta_end, end, __ATOMIC_RELEASE);
}

int qcow2_sync(struct qcow2_state *s)
{
    return s->no_flush ? 0 : file_sync(s->fd);
}

static int write_sync(struct qcow2_state *s, const void *buf, size_t len, uint64_t off,
                      const char *what)
{
    int r = file_pwrite_exact(s->fd, buf, len, off);
    if (r == 0)
        r = qcow2_sync(s);
    if (r < 0)
        qcow2_note_locked(s, "cannot write %s at 0x%" PRIx64 ": %s", what, off, strerror(-r));
    return r;
}

/* Block ri is missing, so every cluster it would cover is free: put the
 * block at cluster c (one of them), describing itself. */
static int new_refblock(struct qcow2_state *s, uint64_t ri, uint64_t c)
{
    uint8_t *blk = calloc(1, s->cluster_size);
    if (!blk)
        return -ENOMEM;
    uint64_t off = c << s->cluster_bits;
    qcow2_rc_set_entry(blk, c - (ri << s->w.rb_bits), s->refcount_order, 1);
    int r = write_sync(s, blk, s->cluster_size, off, "a new refcount block");
    if (r == 0) {
        uint8_t e[8];
        qcow2_put_be64(e, off);
        r = write_sync(s, e, 8, s->refcount_table_offset + ri * 8, "a refcount table entry");
    }
    if (r == 0) {
        s->w.reftable[ri] = off;
        qcow2_rc_install_block(s, off, blk);
        qcow2_note_end(s, off + s->cluster_size);
    }
    free(blk);
    return r;
}

struct growth {
    uint64_t area;       /* first cluster of the new blocks, then the table */
    uint64_t nblocks;    /* k new refcount blocks */
    uint64_t tclusters;  /* m clusters of new table */
    uint64_t entries;    /* new table entries */
};

/* Size the new table and the blocks that count it: the blocks must cover
 * [area, area + k + m) and the table must index every block. */
static int plan_growth(struct qcow2_state *s, uint64_t c, struct growth *g)
{
    uint64_t per_tcluster = s->cluster_size / 8;
    uint32_t rb = s->w.rb_bits;
    uint64_t want = s->w.reftable_entries + s->w.reftable_entries / 2;
    if (want < (c >> rb) + 1)
        want = (c >> rb) + 1;
    g->area = c;
    for (;;) {
        g->entries = (want + per_tcluster - 1) / per_tcluster * per_tcluster;
        g->tclusters = g->entries / per_tcluster;
        if (g->entries * 8 > QCOW2_MAX_REFTABLE_BYTES) {
            qcow2_note_locked(s, "the refcount table would exceed %u bytes: the image cannot grow "
                         "further", QCOW2_MAX_REFTABLE_BYTES);
            return -EFBIG;
        }
        uint64_t k = 1;
        for (;;) {
            uint64_t last = g->area + k + g->tclusters - 1;
            uint64_t kk = (last >> rb) - (g->area >> rb) + 1;
            if (kk == k)
                break;
            k = kk;
        }
        g->nblocks = k;
        uint64_t last_block = (g->area + k + g->tclusters - 1) >> rb;
        if (last_block < g->entries)
            return 0;
        want = last_block + 1;
    }
}

/* The refcount table does not reach cluster c: every cluster from c on
 * is free. Build the new blocks and table there. */
static int grow_reftable(struct qcow2_state *s, uint64_t c)
{
    struct growth g;
    int r = plan_growth(s, c, &g);
    if (r < 0)
        return r;
    uint32_t cb = s->cluster_bits, rb = s->w.rb_bits;
    size_t bbytes = (size_t)g.nblocks << cb, tbytes = (size_t)g.tclusters << cb;
    uint8_t *blocks = calloc(1, bbytes);
    uint8_t *table = calloc(1, tbytes);
    uint64_t *mem = calloc(g.entries, sizeof(*mem));
    if (!blocks || !table || !mem) {
        r = -ENOMEM;
        goto out;
    }
    memcpy(mem, s->w.reftable, s->w.reftable_entries * 8);
    uint64_t b0 = g.area >> rb, end = g.area + g.nblocks + g.tclusters;
    for (uint64_t j = 0; j < g.nblocks; j++)
        mem[b0 + j] = (g.area + j) << cb;
    for (uint64_t x = g.area; x < end; x++) {
        uint64_t j = (x >> rb) - b0;
        qcow2_rc_set_entry(blocks + (j << cb), x & ((1ull << rb) - 1), s->refcount_order, 1);
    }
    for (uint64_t i = 0; i < g.entries; i++)
        qcow2_put_be64(table + 8 * i, mem[i]);

    uint64_t boff = g.area << cb, toff = (g.area + g.nblocks) << cb;
    r = file_pwrite_exact(s->fd, blocks, bbytes, boff);
    if (r == 0)
        r = write_sync(s, table, tbytes, toff, "the new refcount table");
    if (r == 0) {
        uint8_t h[12];
        qcow2_put_be64(h, toff);
        qcow2_put_be32(h + 8, (uint32_t)g.tclusters);
        r = write_sync(s, h, sizeof(h), 48, "the refcount table fields of the header");
    }
    if (r < 0)
        goto out;

    uint64_t old_off = s->refcount_table_offset, old_clusters = s->refcount_table_clusters;
    free(s->w.reftable);
    s->w.reftable = mem;
    mem = NULL;
    s->w.reftable_entries = g.entries;
    s->refcount_table_offset = toff;
    s->refcount_table_clusters = (uint32_t)g.tclusters;
    for (uint64_t j = 0; j < g.nblocks; j++)
        qcow2_rc_install_block(s, (g.area + j) << cb, blocks + (j << cb));
    qcow2_note_end(s, end << cb);
    /* The header no longer names the old table (durable): free it. */
    r = qcow2_rc_add(s, old_off >> cb, old_clusters, -1);
out:
    free(blocks);
    free(table);
    free(mem);
    return r;
}

int qcow2_alloc_clusters(struct qcow2_state *s, uint64_t want, uint64_t *start, uint64_t *got)
{
    struct qcow2_writer *w = &s->w;
    uint64_t c = w->free_hint ? w->free_hint : 1;
    for (;;) {
        uint64_t ri = c >> w->rb_bits;
        int r;
        if (ri >= w->reftable_entries) {
            r = grow_reftable(s, c);
            if (r < 0)
                return r;
            continue;
        }
        if (w->reftable[ri] == 0) {
            r = new_refblock(s, ri, c);
            if (r < 0)
                return r;
            continue;
        }
        uint64_t first, run;
        r = qcow2_rc_scan_free(s, c, (ri + 1) << w->rb_bits, &first, &run);
        if (r < 0)
            return r;
        if (run == 0) {
            c = first;
            continue;
        }
        if (first == 0) {
            /* Cluster 0 is the header: a refcount of 0 there is corruption. */
            qcow2_note_locked(s, "refcount of the header cluster is 0; refusing to allocate it");
            return -EIO;
        }
        uint64_t n = run < want ? run : want;
        r = qcow2_rc_add(s, first, n, 1);
        if (r < 0)
            return r;
        w->free_hint = first + n;
        qcow2_note_end(s, (first + n) << s->cluster_bits);
        *start = first;
        *got = n;
        return 0;
    }
}
