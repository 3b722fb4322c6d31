/* Guest offset -> cluster kind and host offset, in QEMU's decision order:
 * compressed, then zero (never falls through to the backing file), then
 * offset 0 = unallocated, else normal. Runs are built under the cache lock
 * from the cached slice and only the result leaves it. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "qcow2/qcow2.h"

/* One unit (cluster, or subcluster with extended L2) classified. */
struct unit {
    enum qcow2_kind kind;
    uint64_t host;  /* host offset of the unit's first byte */
    bool copied;
};

static bool run_extend(struct qcow2_run *run, bool *started, bool merge_compressed,
                       bool split_copied, const struct unit *u, uint64_t in_unit, uint64_t nbytes,
                       uint64_t l2e)
{
    bool has_host = u->kind == QCOW2_NORMAL || u->kind == QCOW2_ZERO_ALLOC;
    if (!*started) {
        *started = true;
        run->kind = u->kind;
        run->len = nbytes;
        run->host = has_host ? u->host + in_unit : 0;
        run->l2e = u->kind == QCOW2_COMPRESSED ? l2e : 0;
        run->copied = has_host && u->copied;
        return true;
    }
    if (u->kind != run->kind)
        return false;
    switch (u->kind) {
    case QCOW2_NORMAL:
    case QCOW2_ZERO_ALLOC:
        if (u->host + in_unit != run->host + run->len)
            return false;
        if (split_copied && u->copied != run->copied)
            return false;
        break;
    case QCOW2_COMPRESSED:
        if (!merge_compressed)
            return false;
        break;
    default:
        break;
    }
    run->len += nbytes;
    return true;
}

static int corrupt(struct qcow2_state *s, uint64_t off, const char *what, uint64_t l2_off,
                   uint64_t e, struct scuse_err *err)
{
    qcow2_note(s, err, "%s at guest offset 0x%" PRIx64 " (L2 table 0x%" PRIx64
                 ", entry 0x%016" PRIx64 ")", what, off, l2_off, e);
    return -EIO;
}

/* Cluster-level type from the first L2 word. */
static int classify_cluster(struct qcow2_state *s, uint64_t e, enum qcow2_kind *kind)
{
    uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
    if (e & QCOW2_OFLAG_COMPRESSED) {
        if (s->data_fd != s->fd)
            return -1; /* compression is impossible with a data file */
        *kind = QCOW2_COMPRESSED;
        return 0;
    }
    if ((e & QCOW2_OFLAG_ZERO) && !s->ext_l2) {
        *kind = host ? QCOW2_ZERO_ALLOC : QCOW2_ZERO_PLAIN;
    } else if (!host) {
        /* 0 is a valid offset in a data file; COPIED disambiguates. */
        *kind = (s->data_fd != s->fd && (e & QCOW2_OFLAG_COPIED)) ? QCOW2_NORMAL : QCOW2_UNALLOCATED;
        return 0;
    } else {
        *kind = QCOW2_NORMAL;
    }
    if (host & (s->cluster_size - 1))
        return -2;
    return 0;
}

/* Subcluster type from the cluster type and the bitmap word. */
static int classify_sub(enum qcow2_kind ck, uint64_t bm, unsigned sc, enum qcow2_kind *kind)
{
    uint32_t alloc = (uint32_t)bm, zero = (uint32_t)(bm >> 32);
    switch (ck) {
    case QCOW2_NORMAL:
        if (alloc & zero)
            return -1;
        *kind = (zero >> sc & 1) ? QCOW2_ZERO_ALLOC
                : (alloc >> sc & 1) ? QCOW2_NORMAL : QCOW2_UNALLOCATED;
        return 0;
    case QCOW2_UNALLOCATED:
        if (alloc)
            return -1;
        *kind = (zero >> sc & 1) ? QCOW2_ZERO_PLAIN : QCOW2_UNALLOCATED;
        return 0;
    default:
        *kind = ck;
        return 0;
    }
}

/* Scan one cached slice from entry idx. Returns 1 if the run may continue
 * into the next slice, 0 if it ended, negative errno on corruption. */
static int scan_slice(struct qcow2_state *s, const uint64_t *ent, uint64_t idx, uint64_t nent,
                      uint64_t l2_off, uint64_t *pos, uint64_t end, bool merge_compressed,
                      struct qcow2_run *run, bool *started, struct scuse_err *err)
{
    uint64_t cs = s->cluster_size;
    bool split = s->writable;
    for (; idx < nent && *pos < end; idx++) {
        uint64_t e = s->ext_l2 ? ent[2 * idx] : ent[idx];
        uint64_t bm = s->ext_l2 ? ent[2 * idx + 1] : 0;
        enum qcow2_kind ck;
        int c = classify_cluster(s, e, &ck);
        if (c < 0) {
            if (*started)
                return 0;
            return corrupt(s, *pos, c == -1 ? "compressed cluster in an image with an external data file"
                                            : "unaligned host cluster offset", l2_off, e, err);
        }
        uint64_t chost = e & QCOW2_L2E_OFFSET_MASK;
        uint64_t in_cluster = *pos & (cs - 1);
        bool copied = e & QCOW2_OFLAG_COPIED;
        if (!s->ext_l2 || ck == QCOW2_COMPRESSED) {
            struct unit u = { ck, chost, copied };
            uint64_t n = cs - in_cluster;
            if (n > end - *pos)
                n = end - *pos;
            if (!run_extend(run, started, merge_compressed, split, &u, in_cluster, n, e))
                return 0;
            *pos += n;
            continue;
        }
        uint64_t scs = 1ull << s->sc_bits;
        for (unsigned sc = (unsigned)(in_cluster >> s->sc_bits); sc < QCOW2_EXTL2_SUBCLUSTERS && *pos < end; sc++) {
            struct unit u;
            if (classify_sub(ck, bm, sc, &u.kind) < 0) {
                if (*started)
                    return 0;
                return corrupt(s, *pos, "invalid subcluster allocation bitmap", l2_off, bm, err);
            }
            u.host = chost + (uint64_t)sc * scs;
            u.copied = copied;
            uint64_t in_sc = *pos & (scs - 1);
            uint64_t n = scs - in_sc;
            if (n > end - *pos)
                n = end - *pos;
            if (!run_extend(run, started, merge_compressed, split, &u, in_sc, n, e))
                return 0;
            *pos += n;
        }
    }
    return *pos < end;
}

int qcow2_map(struct qcow2_state *s, uint64_t off, uint64_t len, bool merge_compressed,
              struct qcow2_run *run, struct scuse_err *err)
{
    uint64_t pos = off, end = off + len;
    bool started = false;
    uint32_t cb = s->cluster_bits;
    uint64_t l2_entries = 1ull << s->l2_bits;
    uint64_t slice_entries = s->cache.slice_bytes >> s->l2_entry_shift;
    run->kind = QCOW2_UNALLOCATED;
    run->len = 0;
    run->host = run->l2e = 0;
    run->copied = false;
    uint64_t file_end = __atomic_load_n(&s->meta_end, __ATOMIC_ACQUIRE);

    while (pos < end) {
        uint64_t ci = pos >> cb;
        uint64_t l1i = ci >> s->l2_bits;
        uint64_t l2i = ci & (l2_entries - 1);
        uint64_t l1e = l1i < s->l1_loaded ? qcow2_l1_get(s, l1i) : 0;
        uint64_t l2_off = l1e & QCOW2_L1E_OFFSET_MASK;
        if (!l2_off) {
            /* No L2 table: the whole range it would cover is unallocated. */
            uint64_t stop = (l1i + 1) << (cb + s->l2_bits);
            if (stop > end || stop == 0)
                stop = end;
            struct unit u = { QCOW2_UNALLOCATED, 0, false };
            if (!run_extend(run, &started, merge_compressed, false, &u, 0, stop - pos, 0))
                break;
            pos = stop;
            continue;
        }
        if ((l2_off & (s->cluster_size - 1)) || l2_off > file_end ||
            file_end - l2_off < s->cluster_size) {
            if (started)
                break;
            qcow2_note(s, err, "L2 table offset 0x%" PRIx64 " (L1 index %" PRIu64 ") is %s",
                         l2_off, l1i,
                      (l2_off & (s->cluster_size - 1)) ? "not cluster aligned"
                                                       : "beyond the end of the file");
            return -EIO;
        }
        uint64_t sidx = l2i / slice_entries;
        const uint64_t *ent;
        int r = qcow2_l2c_get(&s->cache, s->fd, l2_off + sidx * s->cache.slice_bytes, &ent);
        if (r < 0) {
            if (started)
                break;
            qcow2_note(s, err, "cannot read L2 table at 0x%" PRIx64 ": %s", l2_off, strerror(-r));
            return r;
        }
        r = scan_slice(s, ent, l2i - sidx * slice_entries, slice_entries, l2_off, &pos, end,
                       merge_compressed, run, &started, err);
        qcow2_l2c_unlock(&s->cache);
        if (r < 0)
            return r;
        if (r == 0)
            break;
    }
    return run->len ? 0 : -EIO;
}
