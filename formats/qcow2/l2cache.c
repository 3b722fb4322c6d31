/* Bounded LRU cache of L2 table slices. A hit costs a hash lookup and a
 * list splice under the image's mutex; a miss reads the slice into a stack
 * buffer with the lock dropped, so one slow metadata read never stalls
 * readers whose slices are cached. Two threads missing on the same slice
 * may both read it; the second simply finds it present.
 *
 * The writer changes slices in place under the lock and marks them dirty;
 * dirty slices are never evicted. A reader whose disk read raced with the
 * writeback of that slice (it was written, then evicted, while the reader
 * read) sees wb_gen move and re-reads under the lock, so a stale copy is
 * never installed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "qcow2/qcow2.h"

#define L2C_MAX_SLICE 4096

struct qcow2_l2slot {
    uint64_t key;   /* file offset of the slice; 0 = empty (0 is the header) */
    int32_t hnext;  /* next slot in the same hash bucket */
    int32_t prev, next;
    bool dirty;
};

static uint32_t l2c_hash(const struct qcow2_l2cache *c, uint64_t key)
{
    /* Slice offsets are multiples of the slice size: drop those bits and
     * mix so that consecutive slices land in different buckets. */
    uint64_t h = (key >> 9) * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 32) & c->bucket_mask;
}

int qcow2_l2c_init(struct qcow2_l2cache *c, uint32_t slice_bytes, uint64_t bytes)
{
    memset(c, 0, sizeof(*c));
    if (slice_bytes == 0 || slice_bytes > L2C_MAX_SLICE || (slice_bytes & 7))
        return -EINVAL;
    uint64_t n = bytes / slice_bytes;
    if (n < 4)
        n = 4;
    if (n > (1u << 20))
        n = 1u << 20;
    uint32_t nb = 1;
    while (nb < 2 * n)
        nb <<= 1;
    c->slice_bytes = slice_bytes;
    c->nslots = (uint32_t)n;
    c->bucket_mask = nb - 1;
    c->buckets = malloc(sizeof(*c->buckets) * nb);
    c->slots = calloc(n, sizeof(*c->slots));
    c->data = malloc((size_t)n * slice_bytes);
    if (!c->buckets || !c->slots || !c->data) {
        free(c->buckets);
        free(c->slots);
        free(c->data);
        memset(c, 0, sizeof(*c));
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < nb; i++)
        c->buckets[i] = -1;
    for (uint32_t i = 0; i < n; i++) {
        c->slots[i].hnext = -1;
        c->slots[i].prev = (int32_t)i - 1;
        c->slots[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    c->lru_head = 0;
    c->lru_tail = (int32_t)n - 1;
    int r = pthread_mutex_init(&c->lock, NULL);
    if (r != 0) {
        free(c->buckets);
        free(c->slots);
        free(c->data);
        memset(c, 0, sizeof(*c));
        return -r;
    }
    return 0;
}

void qcow2_l2c_destroy(struct qcow2_l2cache *c)
{
    if (!c->slots)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c->buckets);
    free(c->slots);
    free(c->data);
    memset(c, 0, sizeof(*c));
}

static int32_t l2c_find(const struct qcow2_l2cache *c, uint64_t key)
{
    for (int32_t i = c->buckets[l2c_hash(c, key)]; i >= 0; i = c->slots[i].hnext)
        if (c->slots[i].key == key)
            return i;
    return -1;
}

static void lru_unlink(struct qcow2_l2cache *c, int32_t i)
{
    struct qcow2_l2slot *s = &c->slots[i];
    if (s->prev >= 0)
        c->slots[s->prev].next = s->next;
    else
        c->lru_head = s->next;
    if (s->next >= 0)
        c->slots[s->next].prev = s->prev;
    else
        c->lru_tail = s->prev;
}

static void lru_push_front(struct qcow2_l2cache *c, int32_t i)
{
    struct qcow2_l2slot *s = &c->slots[i];
    s->prev = -1;
    s->next = c->lru_head;
    if (c->lru_head >= 0)
        c->slots[c->lru_head].prev = i;
    c->lru_head = i;
    if (c->lru_tail < 0)
        c->lru_tail = i;
}

static void hash_remove(struct qcow2_l2cache *c, int32_t i)
{
    int32_t *pp = &c->buckets[l2c_hash(c, c->slots[i].key)];
    while (*pp >= 0) {
        if (*pp == i) {
            *pp = c->slots[i].hnext;
            break;
        }
        pp = &c->slots[*pp].hnext;
    }
    c->slots[i].hnext = -1;
}

static const uint64_t *slot_data(const struct qcow2_l2cache *c, int32_t i)
{
    return c->data + (size_t)i * (c->slice_bytes / 8);
}

static int32_t slot_of(const struct qcow2_l2cache *c, const uint64_t *ent)
{
    return (int32_t)((size_t)(ent - c->data) / (c->slice_bytes / 8));
}

static void slice_from_disk(uint64_t *buf, uint32_t bytes)
{
    for (uint32_t k = 0; k < bytes / 8; k++)
        buf[k] = qcow2_be64((const uint8_t *)&buf[k]);
}

/* The least recently used clean slot, or -1. */
static int32_t victim(const struct qcow2_l2cache *c)
{
    for (int32_t i = c->lru_tail; i >= 0; i = c->slots[i].prev)
        if (!c->slots[i].dirty)
            return i;
    return -1;
}

int qcow2_l2c_get(struct qcow2_l2cache *c, int fd, uint64_t off, const uint64_t **ent)
{
    pthread_mutex_lock(&c->lock);
    int32_t i = l2c_find(c, off);
    if (i >= 0) {
        if (c->lru_head != i) {
            lru_unlink(c, i);
            lru_push_front(c, i);
        }
        *ent = slot_data(c, i);
        return 0;
    }
    uint64_t gen = c->wb_gen;
    pthread_mutex_unlock(&c->lock);

    uint64_t buf[L2C_MAX_SLICE / 8];
    int r = file_pread_exact(fd, buf, c->slice_bytes, off);
    if (r < 0)
        return r;
    slice_from_disk(buf, c->slice_bytes);

    pthread_mutex_lock(&c->lock);
    i = l2c_find(c, off);
    if (i < 0 && c->wb_gen != gen) {
        /* A writeback ran meanwhile: what was read may predate it. */
        r = file_pread_exact(fd, buf, c->slice_bytes, off);
        if (r < 0) {
            pthread_mutex_unlock(&c->lock);
            return r;
        }
        slice_from_disk(buf, c->slice_bytes);
    }
    if (i < 0) {
        i = victim(c);
        if (i < 0) {
            /* The writer keeps half the slots clean; never reached. */
            pthread_mutex_unlock(&c->lock);
            return -EBUSY;
        }
        if (c->slots[i].key)
            hash_remove(c, i);
        c->slots[i].key = off;
        uint32_t b = l2c_hash(c, off);
        c->slots[i].hnext = c->buckets[b];
        c->buckets[b] = i;
        memcpy(c->data + (size_t)i * (c->slice_bytes / 8), buf, c->slice_bytes);
    }
    if (c->lru_head != i) {
        lru_unlink(c, i);
        lru_push_front(c, i);
    }
    *ent = slot_data(c, i);
    return 0;
}

void qcow2_l2c_unlock_dirty(struct qcow2_l2cache *c, const uint64_t *ent)
{
    int32_t i = slot_of(c, ent);
    if (!c->slots[i].dirty) {
        c->slots[i].dirty = true;
        c->ndirty++;
    }
    pthread_mutex_unlock(&c->lock);
}

int qcow2_l2c_writeback(struct qcow2_l2cache *c, int fd, unsigned *count)
{
    uint8_t buf[L2C_MAX_SLICE];
    *count = 0;
    /* Only the writer (holding the metadata lock) dirties slices and dirty
     * slots are never evicted, so the slot array can be walked with the
     * lock dropped around each write. */
    for (uint32_t i = 0; i < c->nslots; i++) {
        pthread_mutex_lock(&c->lock);
        if (!c->slots[i].dirty) {
            pthread_mutex_unlock(&c->lock);
            continue;
        }
        uint64_t key = c->slots[i].key;
        const uint64_t *d = slot_data(c, (int32_t)i);
        for (uint32_t k = 0; k < c->slice_bytes / 8; k++)
            qcow2_put_be64(buf + 8 * k, d[k]);
        pthread_mutex_unlock(&c->lock);
        int r = file_pwrite_exact(fd, buf, c->slice_bytes, key);
        if (r < 0)
            return r;
        pthread_mutex_lock(&c->lock);
        c->slots[i].dirty = false;
        c->ndirty--;
        c->wb_gen++;
        pthread_mutex_unlock(&c->lock);
        (*count)++;
    }
    return 0;
}

static void forget(struct qcow2_l2cache *c, int32_t i)
{
    hash_remove(c, i);
    c->slots[i].key = 0;
    if (c->lru_tail != i) {
        lru_unlink(c, i);
        struct qcow2_l2slot *s = &c->slots[i];
        s->next = -1;
        s->prev = c->lru_tail;
        c->slots[c->lru_tail].next = i;
        c->lru_tail = i;
    }
}

void qcow2_l2c_drop(struct qcow2_l2cache *c, uint64_t off, uint64_t len)
{
    pthread_mutex_lock(&c->lock);
    for (uint64_t k = off; k < off + len; k += c->slice_bytes) {
        int32_t i = l2c_find(c, k);
        if (i >= 0 && !c->slots[i].dirty)
            forget(c, i);
    }
    c->wb_gen++; /* a reader's disk copy of such a slice is stale too */
    pthread_mutex_unlock(&c->lock);
}

void qcow2_l2c_reset(struct qcow2_l2cache *c)
{
    pthread_mutex_lock(&c->lock);
    for (uint32_t i = 0; i < c->nslots; i++)
        if (c->slots[i].key && !c->slots[i].dirty)
            forget(c, (int32_t)i);
    c->wb_gen++;
    pthread_mutex_unlock(&c->lock);
}

void qcow2_l2c_unlock(struct qcow2_l2cache *c)
{
    pthread_mutex_unlock(&c->lock);
}
