/* VHD (Virtual PC / Hyper-V, QEMU's "vpc"): on-disk constants and the
 * per-image state shared by the driver's files. Everything on disk is
 * big-endian.
 *
 * Layout: a fixed disk is its data followed by a 512-byte footer. Dynamic
 * and differencing disks start with a copy of the footer, then a 1024-byte
 * dynamic header, a block allocation table (BAT, u32 sector numbers) and
 * blocks, each a sector bitmap (one bit per 512-byte sector, most
 * significant bit first) followed by the block's data; the footer ends the
 * file. A clear bit reads as zeros in a dynamic disk and as the parent's
 * data in a differencing one.
 *
 * Files: footer.c (footer and header codecs, checksums, geometry, size),
 * open.c (validation and the BAT), parent.c (locators, the parent's
 * name and identity), bitmap.c (block states and the bitmap cache),
 * read.c (mapping, reads, block status), driver.c (vtable, info). */
#ifndef SCUSE_VHD_H
#define SCUSE_VHD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blk/driver.h"

#define VHD_SECTOR 512u
#define VHD_FOOTER_SIZE 512u
#define VHD_DYN_HEADER_SIZE 1024u
#define VHD_COOKIE "conectix"
#define VHD_DYN_COOKIE "cxsparse"

#define VHD_TYPE_FIXED 2u
#define VHD_TYPE_DYNAMIC 3u
#define VHD_TYPE_DIFF 4u

#define VHD_BAT_FREE 0xffffffffu
#define VHD_FIXED_DATA_OFFSET UINT64_MAX

/* Seconds from the Unix epoch to 2000-01-01 00:00:00 UTC, VHD's epoch. */
#define VHD_EPOCH 946684800u

/* QEMU's limits: the largest CHS geometry, and 2040 GiB of sectors. */
#define VHD_CHS_MAX_C 65535u
#define VHD_CHS_MAX_H 16u
#define VHD_CHS_MAX_S 255u
#define VHD_MAX_GEOMETRY ((uint64_t)VHD_CHS_MAX_C * VHD_CHS_MAX_H * VHD_CHS_MAX_S)
#define VHD_MAX_SECTORS 0xff000000ull

/* Limits of this reader: a block of at most 256 MiB (a 64 KiB bitmap) and
 * a BAT of at most 2^26 entries (256 MiB). */
#define VHD_MIN_BLOCK 512u
#define VHD_MAX_BLOCK (256u << 20)
#define VHD_MAX_BAT_ENTRIES (1u << 26)
#define VHD_DEFAULT_BLOCK (2u << 20)

/* Parent locator platform codes. */
#define VHD_PLAT_W2RU 0x57327275u /* "W2ru": relative Windows path, UTF-16LE */
#define VHD_PLAT_W2KU 0x57326b75u /* "W2ku": absolute Windows path, UTF-16LE */
#define VHD_NLOC 8
/* The longest locator path: a Windows long path, 32767 UTF-16 units. */
#define VHD_MAX_LOCATOR_BYTES 65534u

struct vhd_footer {
    uint32_t features;
    uint32_t version;
    uint64_t data_offset;
    uint32_t timestamp;
    uint8_t creator_app[4];
    uint32_t creator_version;
    uint8_t creator_os[4];
    uint64_t orig_size;
    uint64_t cur_size;
    uint16_t cyls;
    uint8_t heads, secs;
    uint32_t type;
    uint32_t checksum;
    uint8_t uuid[16];
    uint8_t saved_state;
};

struct vhd_locator {
    uint32_t code;
    uint32_t space;
    uint32_t length;
    uint64_t offset;
};

struct vhd_dyn_header {
    uint64_t data_offset;
    uint64_t table_offset;
    uint32_t version;
    uint32_t max_entries;
    uint32_t block_size;
    uint32_t checksum;
    uint8_t parent_uuid[16];
    uint32_t parent_ts;
    uint8_t parent_name[512];  /* UTF-16BE */
    struct vhd_locator loc[VHD_NLOC];
};

/* What is known about an allocated block's bitmap (s->bstate). */
enum {
    VHD_BS_UNKNOWN = 0,  /* not looked at yet */
    VHD_BS_FULL = 1,     /* every sector of the block inside the disk is set */
    VHD_BS_MIXED = 2,    /* some clear: ask the bitmap cache */
};

struct vhd_bslot;

/* Bitmaps of MIXED blocks, a bounded LRU keyed by block index. */
struct vhd_bcache {
    uint32_t nslots;
    uint32_t bucket_mask;
    int32_t *buckets;
    struct vhd_bslot *slots;
    uint8_t *data;             /* nslots bitmaps */
    uint64_t tick;
};

/* Footer fields as text, for info (items point here). */
struct vhd_text {
    char creator[5], os[5], version[16], uuid[37], parent_uuid[37];
};

struct vhd_state {
    const char *path;          /* bs->path, for messages */
    int fd;
    uint64_t file_size;

    struct vhd_footer ft;
    uint8_t footer_raw[VHD_FOOTER_SIZE]; /* as read (reserved bytes kept) */
    bool head_copy;            /* the footer copy at 0 was used */
    bool tail_ok;              /* a valid footer ends the file */
    uint64_t footer_off;       /* fixed: where the footer starts (data ends) */
    uint64_t size;             /* virtual size in bytes */
    bool size_from_chs;        /* the size is C*H*S, not current_size */

    /* Dynamic and differencing. */
    bool sparse;
    bool diff;
    struct vhd_dyn_header dh;
    uint8_t dh_raw[VHD_DYN_HEADER_SIZE];
    uint32_t block_size, block_shift;
    uint32_t spb;              /* sectors per block */
    uint32_t bitmap_size;      /* bytes, a multiple of 512 */
    uint32_t *bat;             /* host order, max_entries entries */
    uint32_t n_bat;
    uint32_t n_blocks;         /* blocks the virtual size covers */
    uint8_t *bstate;           /* VHD_BS_*, per covered block, atomic */
    uint64_t meta_end;         /* end of the header, BAT and locator data */
    char *parent_name;         /* UTF-8, from the header's name field */

    struct vhd_text txt;

    /* The bitmap cache and, on a writable open, the writer's metadata:
     * allocation, BAT changes, bitmap bits, flush. */
    pthread_mutex_t lock;
    bool lock_ready;
    struct vhd_bcache bc;

    /* Writer (write.c, flush.c). */
    bool writable;
    bool no_flush;             /* BLK_OPEN_NO_FLUSH: syncs are skipped */
    uint64_t data_end;         /* where the next block goes */
    uint8_t *bat_dirty;        /* per 512-byte piece of the BAT */
    uint32_t bat_pieces;
    bool bat_any_dirty;
    uint32_t ndirty;           /* dirty bitmaps in the cache */
    bool meta_unsynced;        /* metadata written since the last sync */
    bool data_unsynced;        /* guest data written since the last sync (atomic) */
    bool tail_fixed;           /* the file ends with our footer at data_end */
};

/* What a layout check finds (check.c). */
struct vhd_problem {
    char msg[256];
};

static inline uint16_t vhd_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t vhd_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t vhd_be64(const uint8_t *p)
{
    return (uint64_t)vhd_be32(p) << 32 | vhd_be32(p + 4);
}

static inline void vhd_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void vhd_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void vhd_put_be64(uint8_t *p, uint64_t v)
{
    vhd_put_be32(p, (uint32_t)(v >> 32));
    vhd_put_be32(p + 4, (uint32_t)v);
}

static inline bool vhd_bit(const uint8_t *bitmap, uint32_t sector)
{
    return bitmap[sector >> 3] >> (7 - (sector & 7)) & 1;
}

static inline uint32_t vhd_bat_get(const struct vhd_state *s, uint32_t i)
{
    return __atomic_load_n(&s->bat[i], __ATOMIC_ACQUIRE);
}

/* footer.c */
uint32_t vhd_checksum(const uint8_t *buf, size_t len, size_t csum_off);
void vhd_footer_decode(const uint8_t *b, struct vhd_footer *f);
void vhd_footer_encode(const struct vhd_footer *f, uint8_t *b);
void vhd_dyn_decode(const uint8_t *b, struct vhd_dyn_header *h);
void vhd_dyn_encode(const struct vhd_dyn_header *h, uint8_t *b);
/* The virtual size QEMU gives the footer (sets *from_chs when it is the
 * geometry's C*H*S sectors). */
uint64_t vhd_virtual_size(const struct vhd_footer *f, bool *from_chs);
/* The VHD specification's CHS geometry for a disk of total_sectors. */
void vhd_geometry(uint64_t total_sectors, uint16_t *c, uint8_t *h, uint8_t *s);
/* The creator as printable text ("qemu", "win", "tap"). */
void vhd_creator_text(const uint8_t app[4], char out[5]);
const char *vhd_type_name(uint32_t type);
void vhd_uuid_text(const uint8_t u[16], char out[37]);

/* open.c */
int vhd_read_meta(struct blk_node *bs, struct vhd_state *s, struct scuse_err *err);

/* parent.c */
/* Choose the parent from the locators and the name; sets bs->backing_name
 * and bs->backing_fmt. */
int vhd_find_parent(struct blk_node *bs, struct vhd_state *s, struct scuse_err *err);
/* The block layer opened bs->backing: is it the parent the child names? */
int vhd_verify_parent(struct blk_node *bs, struct scuse_err *err);

/* bitmap.c */
int vhd_bcache_init(struct vhd_state *s);
void vhd_bcache_destroy(struct vhd_state *s);
/* The state of allocated block blk (loading its bitmap if unknown). */
int vhd_block_state(struct vhd_state *s, uint32_t blk, int *state, struct scuse_err *err);
/* Sectors from sector `first` of block blk (at most n) whose bit equals
 * that of `first`; *set says which. */
int vhd_bitmap_run(struct vhd_state *s, uint32_t blk, uint32_t first, uint32_t n,
                   bool *set, uint32_t *count, struct scuse_err *err);

/* bitmap.c, for the writer (s->lock held): the bitmap of allocated block
 * blk with bits [first, first+n) set, dirty until written back; a new
 * block's bitmap put in the cache; every dirty bitmap written. */
int vhd_bitmap_set_locked(struct vhd_state *s, uint32_t blk, uint32_t first, uint32_t n,
                          struct scuse_err *err);
int vhd_bitmap_insert_locked(struct vhd_state *s, uint32_t blk, const uint8_t *bm,
                             struct scuse_err *err);
int vhd_bitmap_writeback_locked(struct vhd_state *s, struct scuse_err *err);
/* Forget cached bitmaps (check's repairs rewrite them). */
void vhd_bcache_drop(struct vhd_state *s);

/* write.c */
int vhd_pwritev(struct blk_node *bs, uint64_t off, const struct iov_view *v, unsigned flags,
                struct scuse_err *err);
int vhd_write_zeroes(struct blk_node *bs, uint64_t off, uint64_t len, unsigned flags,
                     struct scuse_err *err);
int vhd_discard(struct blk_node *bs, uint64_t off, uint64_t len, struct scuse_err *err);

/* flush.c */
int vhd_writer_open(struct blk_node *bs, struct vhd_state *s, struct scuse_err *err);
int vhd_flush_locked(struct vhd_state *s, struct scuse_err *err);
int vhd_flush(struct blk_node *bs, struct scuse_err *err);
bool vhd_meta_pending(struct blk_node *bs);
int vhd_sync(struct vhd_state *s);
/* The end of the metadata and of every allocated block (where the next
 * block goes). */
uint64_t vhd_used_end(const struct vhd_state *s);

/* check.c */
/* The first place two structures of the file overlap, or a block lies
 * past the end of the file: 1 with p filled, 0 when there is none. */
int vhd_layout_problem(const struct vhd_state *s, struct vhd_problem *p);
int vhd_check(struct blk_node *bs, unsigned fix, struct blk_check_result *res,
              struct scuse_err *err);

/* create.c */
int vhd_create(const char *path, const struct blk_create_opts *o, struct scuse_err *err);
extern const struct blk_opt_desc vhd_create_opts[];

/* read.c */
enum vhd_kind {
    VHD_RUN_DATA,      /* stored here, at host */
    VHD_RUN_ZERO,      /* reads as zeros (dynamic: unallocated or clear bit) */
    VHD_RUN_BELOW,     /* the parent's (differencing) */
};
struct vhd_run {
    enum vhd_kind kind;
    uint64_t len;
    uint64_t host;
    bool allocated;    /* the block is allocated (ZERO from a clear bit) */
};
int vhd_map(struct vhd_state *s, uint64_t off, uint64_t len, struct vhd_run *run,
            struct scuse_err *err);
int vhd_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v,
               struct scuse_err *err);
int vhd_block_status(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                     struct blk_status *st, struct scuse_err *err);

#endif
