/* cue: a CUE sheet and its BIN files as one read-only block node. The
 * node reads as the disc's user data, 2048 bytes per sector (LBA * 2048),
 * so `scuse convert disc.cue disc.iso` extracts the data and a cdrom LUN
 * reads it with READ(10); audio sectors and generated gaps read as zeros
 * here (the MMC layer refuses them to READ(10) and gives their raw bytes
 * to READ CD through optical_read_stored). The BINs are opened through
 * the raw driver, named relative to the sheet's directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "blk/driver.h"
#include "io/file.h"
#include "optical/cue.h"

extern const struct blk_driver blk_driver_cue;

struct cue_state {
    struct optical_disc disc;
    unsigned n_files;
    struct blk_node *file[OPTICAL_MAX_FILES];
};

/* Text that begins like a CUE sheet: a FILE line (perhaps after REM,
 * CATALOG, TITLE... lines), and a TRACK and an INDEX line within the
 * first bytes. Only ever text. */
static int cue_probe(const struct blk_probe *p)
{
    size_t n = p->head_len < 4096 ? p->head_len : 4096;
    bool file = false, track = false, index = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = p->head[i];
        if (ch == 0 || (ch < 0x20 && ch != '\n' && ch != '\r' && ch != '\t'))
            return 0;
        if (i == 0 || p->head[i - 1] == '\n') {
            size_t j = i;
            while (j < n && (p->head[j] == ' ' || p->head[j] == '\t'))
                j++;
            const char *w = (const char *)p->head + j;
            size_t left = n - j;
            file |= left > 5 && !strncasecmp(w, "FILE ", 5);
            track |= left > 6 && !strncasecmp(w, "TRACK ", 6);
            index |= left > 6 && !strncasecmp(w, "INDEX ", 6);
        }
    }
    return file && track && index ? 90 : 0;
}

static void cue_close(struct blk_node *bs)
{
    struct cue_state *s = bs->state;
    if (!s)
        return;
    for (unsigned i = 0; i < s->n_files; i++)
        blk_close(s->file[i]);
    free(s);
    bs->state = NULL;
}

/* A BIN's path: as written when absolute, else beside the sheet. */
static int cue_open(struct blk_node *bs, struct scuse_err *err)
{
    uint64_t size;
    int r = file_size(bs->fd, &size);
    if (r < 0)
        return err_set(err, r, "'%s': cannot get size: %s", bs->path, strerror(-r));
    if (size > CUE_MAX_BYTES)
        return err_set(err, -EINVAL, "'%s': %llu bytes is too large for a CUE sheet (at most "
                       "%u)", bs->path, (unsigned long long)size, CUE_MAX_BYTES);
    char *text = malloc(size + 1);
    struct cue_sheet *cs = malloc(sizeof(*cs));
    struct cue_state *s = calloc(1, sizeof(*s));
    if (!text || !cs || !s) {
        free(text);
        free(cs);
        free(s);
        return err_set(err, -ENOMEM, "'%s': out of memory for the CUE sheet", bs->path);
    }
    bs->state = s;
    r = file_pread_exact(bs->fd, text, size, 0);
    if (r < 0)
        r = err_set(err, r, "'%s': cannot read: %s", bs->path, strerror(-r));
    if (r == 0)
        r = cue_parse(text, size, bs->path, cs, err);
    uint64_t sizes[OPTICAL_MAX_FILES];
    unsigned flags = bs->share ? BLK_OPEN_SHARE : 0;
    for (unsigned i = 0; r == 0 && i < cs->n_files; i++) {
        char *path = blk_path_beside(bs->path, cs->file[i]);
        if (!path) {
            r = err_set(err, -ENOMEM, "'%s': out of memory", bs->path);
            break;
        }
        struct scuse_err e = { 0 };
        r = blk_open(path, "raw", flags, NULL, &s->file[i], &e);
        if (r < 0)
            r = err_set(err, r, "'%s' line %u: FILE '%s': %s", bs->path, cs->file_line[i],
                        cs->file[i], e.msg);
        else {
            s->n_files = i + 1;
            r = file_size(s->file[i]->fd, &sizes[i]);
            if (r < 0)
                r = err_set(err, r, "'%s': cannot get size: %s", path, strerror(-r));
        }
        free(path);
    }
    if (r == 0)
        r = cue_layout(cs, sizes, bs->path, &s->disc, err);
    free(text);
    free(cs);
    if (r < 0) {
        cue_close(bs);
        return r;
    }
    bs->size = (uint64_t)s->disc.leadout * OPTICAL_USER;
    bs->align = 1;
    return 0;
}

const struct optical_disc *optical_disc_of(const struct blk_node *bs)
{
    if (bs->drv != &blk_driver_cue || !bs->state)
        return NULL;
    return &((const struct cue_state *)bs->state)->disc;
}

int optical_read_stored(struct blk_node *bs, const struct optical_track *t, uint32_t lba,
                        uint32_t off, void *buf, uint32_t len, struct scuse_err *err)
{
    if (bs->drv != &blk_driver_cue || t->file < 0 || off + len > t->sector_size)
        return err_set(err, -EINVAL, "'%s': no stored sectors to read", bs->path);
    struct cue_state *s = bs->state;
    if (lba < t->stored_lba || lba >= t->stored_end) {
        memset(buf, 0, len);        /* a generated gap */
        return 0;
    }
    uint64_t at = t->file_off + (uint64_t)(lba - t->stored_lba) * t->sector_size + off;
    return blk_pread(s->file[t->file], at, buf, len, err);
}

#define CHUNK_SECTORS 8             /* raw sectors read at once (18 KiB of stack) */

/* Sectors [lba, lba + n) of track t, all stored, user data into v at voff. */
static int read_stored(struct cue_state *s, const struct optical_track *t, uint32_t lba,
                       uint32_t n, const struct iov_view *v, size_t voff, struct scuse_err *err)
{
    struct blk_node *f = s->file[t->file];
    uint64_t at = t->file_off + (uint64_t)(lba - t->stored_lba) * t->sector_size;
    if (t->sector_size == OPTICAL_USER) {
        struct iov_view sub = iov_view_sub(v, voff, (size_t)n * OPTICAL_USER);
        return blk_preadv(f, at, &sub, err);
    }
    uint8_t raw[CHUNK_SECTORS * OPTICAL_RAW];
    while (n) {
        uint32_t k = n < CHUNK_SECTORS ? n : CHUNK_SECTORS;
        int r = blk_pread(f, at, raw, (size_t)k * t->sector_size, err);
        if (r < 0)
            return r;
        for (uint32_t i = 0; i < k; i++)
            iov_view_from_buf(v, voff + (size_t)i * OPTICAL_USER,
                              raw + (size_t)i * t->sector_size + t->data_off, OPTICAL_USER);
        at += (uint64_t)k * t->sector_size;
        voff += (size_t)k * OPTICAL_USER;
        n -= k;
    }
    return 0;
}

static int cue_preadv(struct blk_node *bs, uint64_t off, const struct iov_view *v,
                      struct scuse_err *err)
{
    struct cue_state *s = bs->state;
    size_t done = 0;
    while (done < v->len) {
        uint64_t pos = off + done;
        uint32_t lba = (uint32_t)(pos / OPTICAL_USER), in = (uint32_t)(pos % OPTICAL_USER);
        const struct optical_track *t = optical_track_at(&s->disc, lba);
        if (in || !t || t->mode == OPTICAL_AUDIO || lba < t->stored_lba ||
            lba >= t->stored_end || v->len - done < OPTICAL_USER) {
            /* Part of a sector, or one without user data: alone. */
            size_t len = OPTICAL_USER - in;
            if (len > v->len - done)
                len = v->len - done;
            if (t && t->mode != OPTICAL_AUDIO && lba >= t->stored_lba && lba < t->stored_end) {
                uint8_t b[OPTICAL_USER];
                struct iovec slot;
                struct iov_view one = iov_view_of_buf(&slot, b, sizeof(b));
                int r = read_stored(s, t, lba, 1, &one, 0, err);
                if (r < 0)
                    return r;
                iov_view_from_buf(v, done, b + in, len);
            } else {
                iov_view_memset(v, done, 0, len);
            }
            done += len;
            continue;
        }
        uint64_t whole = (v->len - done) / OPTICAL_USER;
        uint32_t n = t->stored_end - lba < whole ? t->stored_end - lba : (uint32_t)whole;
        int r = read_stored(s, t, lba, n, v, done, err);
        if (r < 0)
            return r;
        done += (size_t)n * OPTICAL_USER;
    }
    return 0;
}

static int cue_block_status(struct blk_node *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                            struct blk_status *st, struct scuse_err *err)
{
    (void)bs;
    (void)off;
    (void)err;
    *pnum = len;
    st->flags = BLK_STATUS_ALLOCATED | BLK_STATUS_DATA;
    return 0;
}

const struct blk_driver blk_driver_cue = {
    .name = "cue",
    .description = "CUE sheet and BIN files of an optical disc (its data tracks)",
    .probe = cue_probe,
    .open = cue_open,
    .close = cue_close,
    .preadv = cue_preadv,
    .block_status = cue_block_status,
};
