/* Bounded cache of decompressed clusters, per image. A small read from a
 * compressed cluster (a guest's 4 KiB read of a 64 KiB cluster) would
 * otherwise inflate the whole cluster every time; with the cache a run of
 * such reads inflates it once.
 *
 * Keyed by the compressed data's host offset and sector count. Compressed
 * data never changes in place (writes copy), but its host bytes can be
 * freed and reused for other data: the writer empties the cache whenever
 * it applies refcount decrements, after the barrier has drained every
 * read that mapped an old entry (flush.c), so no stale cluster is served.
 *
 * Copies in and out happen under the cache lock (at most one cluster,
 * memcpy speed); whole-cluster reads (convert) bypass the cache. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2/qcow2.h"

struct qcow2_dslot {
    uint64_t coff;             /* compressed data's host offset, UINT64_MAX = empty */
    uint64_t nsec;
    uint64_t tick;             /* last use */
};

int qcow2_dcache_init(struct qcow2_dcache *c, uint32_t cluster_size, uint64_t bytes)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    uint64_t n = bytes / cluster_size;
    if (n < QCOW2_DCACHE_MIN_SLOTS)
        n = QCOW2_DCACHE_MIN_SLOTS;
    if (n > QCOW2_DCACHE_MAX_SLOTS)
        n = QCOW2_DCACHE_MAX_SLOTS;
    c->slots = calloc(n, sizeof(*c->slots));
    c->data = malloc(n * cluster_size);
    if (!c->slots || !c->data) {
        qcow2_dcache_destroy(c);
        return -ENOMEM;
    }
    c->nslots = (uint32_t)n;
    c->cluster_size = cluster_size;
    for (uint32_t i = 0; i < c->nslots; i++)
        c->slots[i].coff = UINT64_MAX;
    return 0;
}

void qcow2_dcache_destroy(struct qcow2_dcache *c)
{
    free(c->slots);
    free(c->data);
    pthread_mutex_destroy(&c->lock);
    memset(c, 0, sizeof(*c));
}

/* Linear search: the cache holds tens of clusters, and a hit saves an
 * inflate of a whole cluster. */
static int32_t find(const struct qcow2_dcache *c, uint64_t coff, uint64_t nsec)
{
    for (uint32_t i = 0; i < c->nslots; i++)
        if (c->slots[i].coff == coff && c->slots[i].nsec == nsec)
            return (int32_t)i;
    return -1;
}

bool qcow2_dcache_read(struct qcow2_dcache *c, uint64_t coff, uint64_t nsec, uint32_t in_off,
                       const struct iov_view *v)
{
    if (!c->nslots)
        return false;
    pthread_mutex_lock(&c->lock);
    int32_t i = find(c, coff, nsec);
    if (i >= 0) {
        c->slots[i].tick = ++c->tick;
        iov_view_from_buf(v, 0, c->data + (size_t)i * c->cluster_size + in_off, v->len);
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->lock);
    return i >= 0;
}

void qcow2_dcache_insert(struct qcow2_dcache *c, uint64_t coff, uint64_t nsec, const void *data)
{
    if (!c->nslots)
        return;
    pthread_mutex_lock(&c->lock);
    if (find(c, coff, nsec) < 0) {
        uint32_t victim = 0;
        for (uint32_t i = 1; i < c->nslots; i++)
            if (c->slots[i].tick < c->slots[victim].tick)
                victim = i;
        c->slots[victim].coff = coff;
        c->slots[victim].nsec = nsec;
        c->slots[victim].tick = ++c->tick;
        memcpy(c->data + (size_t)victim * c->cluster_size, data, c->cluster_size);
    }
    pthread_mutex_unlock(&c->lock);
}

void qcow2_dcache_clear(struct qcow2_dcache *c)
{
    if (!c->nslots)
        return;
    pthread_mutex_lock(&c->lock);
    for (uint32_t i = 0; i < c->nslots; i++) {
        c->slots[i].coff = UINT64_MAX;
        c->slots[i].tick = 0;
    }
    pthread_mutex_unlock(&c->lock);
}
