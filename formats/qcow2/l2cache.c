/* Bounded LRU cache of L2 table slices. A hit costs a hash lookup and a
 * list splice under the image's mutex; a miss reads the slice into a stack
 * buffer with the lock dropped, so one slow metadata read never stalls
 * readers whose slices are cached. Two threads missing on the same slice
 * may both read it; the second simply finds it present. */
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
    pthread_mutex_unlock(&c->lock);

    uint64_t buf[L2C_MAX_SLICE / 8];
    int r = file_pread_exact(fd, buf, c->slice_bytes, off);
    if (r < 0)
        return r;
    for (uint32_t k = 0; k < c->slice_bytes / 8; k++)
        buf[k] = qcow2_be64((const uint8_t *)&buf[k]);

    pthread_mutex_lock(&c->lock);
    i = l2c_find(c, off);
    if (i < 0) {
        i = c->lru_tail;
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

void qcow2_l2c_unlock(struct qcow2_l2cache *c)
{
    pthread_mutex_unlock(&c->lock);
}
