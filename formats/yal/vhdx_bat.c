/* Where a VHDX keeps data: its region table, metadata (block size, logical
 * sector size, whether it has a parent) and BAT, read from the file as
 * MS-VHDX lays them out. libvhdi reads the data but does not say which
 * blocks are present; this is only for block status, so anything it does
 * not understand leaves the image "all data" (vhdx_bat_load returns 1)
 * and never fails an open libvhdi accepted. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"
#include "util/endian.h"
#include "yal/vhdx_bat.h"

#define REGION1 (192u << 10)
#define REGION2 (256u << 10)
#define REGION_SIZE (64u << 10)
#define BAT_MAX (256u << 20)          /* a BAT larger than this: no status */
#define META_TABLE 65536u

/* GUIDs as stored: the first three fields little-endian. */
static const uint8_t GUID_BAT[16] = { 0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42,
                                      0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08 };
static const uint8_t GUID_META[16] = { 0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b,
                                       0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e };
static const uint8_t GUID_FILEPARAM[16] = { 0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d,
                                            0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b };
static const uint8_t GUID_SECTOR[16] = { 0x1d, 0xbf, 0x41, 0x81, 0x6f, 0xa9, 0x09, 0x47,
                                         0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f };

uint32_t vhdx_crc32c(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
    }
    return ~c;
}

/* The region table at `at`, if its signature and CRC hold. */
static bool region_table(int fd, uint32_t at, uint8_t *t)
{
    if (file_pread_exact(fd, t, REGION_SIZE, at) < 0 || memcmp(t, "regi", 4) != 0)
        return false;
    uint32_t want = le32_at(t + 4);
    memset(t + 4, 0, 4);
    bool ok = vhdx_crc32c(t, REGION_SIZE) == want;
    return ok && le32_at(t + 8) <= 2047;
}

static bool region(const uint8_t *t, const uint8_t *guid, uint64_t *off, uint32_t *len)
{
    uint32_t n = le32_at(t + 8);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = t + 16 + 32 * i;
        if (memcmp(e, guid, 16) == 0) {
            *off = le64_at(e + 16);
            *len = le32_at(e + 24);
            return true;
        }
    }
    return false;
}

/* The metadata item `guid`: its first `want` bytes. */
static bool meta_item(int fd, const uint8_t *table, uint64_t moff, uint32_t mlen,
                      const uint8_t *guid, void *out, uint32_t want)
{
    uint32_t n = le16_at(table + 10);
    if (n > 2047)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = table + 32 + 32 * i;
        if (memcmp(e, guid, 16) != 0)
            continue;
        uint32_t o = le32_at(e + 16), l = le32_at(e + 20);
        if (l < want || o > mlen || want > mlen - o)
            return false;
        return file_pread_exact(fd, out, want, moff + o) == 0;
    }
    return false;
}

int vhdx_meta_find(int fd, const uint8_t *guid, uint64_t *off, uint32_t *len)
{
    uint8_t *t = malloc(REGION_SIZE > META_TABLE ? REGION_SIZE : META_TABLE);
    if (!t)
        return -ENOMEM;
    int r = -ENOENT;
    uint64_t moff;
    uint32_t mlen;
    if ((region_table(fd, REGION1, t) || region_table(fd, REGION2, t)) &&
        region(t, GUID_META, &moff, &mlen) && mlen >= META_TABLE &&
        file_pread_exact(fd, t, META_TABLE, moff) == 0 && memcmp(t, "metadata", 8) == 0) {
        uint32_t n = le16_at(t + 10);
        for (uint32_t i = 0; i < n && i < 2047; i++) {
            const uint8_t *e = t + 32 + 32 * i;
            if (memcmp(e, guid, 16) != 0)
                continue;
            uint32_t o = le32_at(e + 16), l = le32_at(e + 20);
            if (o <= mlen && l <= mlen - o) {
                *off = moff + o;
                *len = l;
                r = 0;
            }
            break;
        }
    }
    free(t);
    return r;
}

int vhdx_bat_load(int fd, uint64_t size, struct vhdx_bat *b)
{
    memset(b, 0, sizeof(*b));
    uint64_t fsize;
    if (file_size(fd, &fsize) < 0)
        return 1;
    uint8_t *t = malloc(REGION_SIZE > META_TABLE ? REGION_SIZE : META_TABLE);
    if (!t)
        return -ENOMEM;
    int r = 1;
    uint64_t boff, moff;
    uint32_t blen, mlen;
    if (!(region_table(fd, REGION1, t) || region_table(fd, REGION2, t)) ||
        !region(t, GUID_BAT, &boff, &blen) || !region(t, GUID_META, &moff, &mlen))
        goto out;
    if (mlen < META_TABLE || file_pread_exact(fd, t, META_TABLE, moff) < 0 ||
        memcmp(t, "metadata", 8) != 0)
        goto out;
    uint8_t fp[8], ss[4];
    if (!meta_item(fd, t, moff, mlen, GUID_FILEPARAM, fp, 8) ||
        !meta_item(fd, t, moff, mlen, GUID_SECTOR, ss, 4))
        goto out;
    uint32_t block = le32_at(fp), sector = le32_at(ss);
    b->has_parent = le32_at(fp + 4) & 2;
    /* 1 MiB to 256 MiB, a power of two; sectors of 512 or 4096 bytes */
    if (block < (1u << 20) || block > (256u << 20) || (block & (block - 1)) ||
        (sector != 512 && sector != 4096))
        goto out;
    b->block = block;
    b->chunk = (uint32_t)(((uint64_t)sector << 23) / block);
    b->n_blocks = (size + block - 1) / block;
    if (b->chunk == 0)
        goto out;
    uint64_t entries = b->n_blocks + (b->n_blocks ? (b->n_blocks - 1) / b->chunk : 0);
    if (entries == 0 || entries * 8 > blen || entries * 8 > BAT_MAX || boff > fsize ||
        entries * 8 > fsize - boff)
        goto out;
    b->entry = malloc(entries * 8);
    if (!b->entry) {
        r = -ENOMEM;
        goto out;
    }
    if (file_pread_exact(fd, b->entry, entries * 8, boff) < 0) {
        free(b->entry);
        b->entry = NULL;
        goto out;
    }
    b->n_entries = entries;
    r = 0;
out:
    free(t);
    return r;
}

void vhdx_bat_free(struct vhdx_bat *b)
{
    free(b->entry);
    b->entry = NULL;
}

/* Payload block i's BAT entry (a sector-bitmap entry follows each chunk). */
static uint64_t entry(const struct vhdx_bat *b, uint64_t i)
{
    return le64_at((const uint8_t *)&b->entry[i + i / b->chunk]);
}

enum kind { K_DATA, K_ZERO, K_OTHER };

static enum kind kind_of(const struct vhdx_bat *b, uint64_t e)
{
    switch (e & 7) {
    case VHDX_BLOCK_NOT_PRESENT:
    case VHDX_BLOCK_ZERO:
        /* a differencing disk's absent blocks are its parent's (libvhdi
         * reads them there): data, as far as this layer can say */
        return b->has_parent ? K_OTHER : K_ZERO;
    case VHDX_BLOCK_FULLY_PRESENT:
        return K_DATA;
    default:
        return K_OTHER; /* undefined, unmapped, partly present: libvhdi's answer */
    }
}

void vhdx_bat_status(const struct vhdx_bat *b, uint64_t off, uint64_t len, uint64_t *pnum,
                     struct blk_status *st)
{
    uint64_t i = off / b->block, in = off % b->block;
    uint64_t e = entry(b, i);
    enum kind k = kind_of(b, e);
    uint64_t host = (e >> 20) << 20;
    uint64_t n = b->block - in;
    /* whole blocks after it of the same kind (and, for data, contiguous) */
    while (n < len && ++i < b->n_blocks) {
        uint64_t f = entry(b, i);
        if (kind_of(b, f) != k || (k == K_DATA && ((f >> 20) << 20) != host + in + n))
            break;
        n += b->block;
    }
    *pnum = n < len ? n : len;
    switch (k) {
    case K_DATA:
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_DATA | BLK_STATUS_OFFSET;
        st->offset = host + in;
        break;
    case K_ZERO:
        /* as the VHD driver: a dynamic disk answers for its whole range */
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_ZERO;
        break;
    case K_OTHER:
        st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_DATA;
        break;
    }
}
