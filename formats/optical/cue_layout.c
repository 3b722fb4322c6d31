/* A parsed CUE sheet laid out on the disc: absolute addresses and file
 * offsets of every track.
 *
 * Within one file, INDEX times count sectors of the tracks stored before
 * them, each of its own size (a MODE1/2048 track followed by AUDIO in one
 * BIN): a track's first stored sector (INDEX 00 when given, else 01) lies
 * at the previous track's first byte plus the frames between them times
 * the previous track's sector size. The last track of a file runs to the
 * end of the file. On the disc, tracks follow each other: PREGAP frames
 * (not stored) before a track's stored sectors, POSTGAP frames after.
 * Track 1 starts at LBA 0: stored sectors before its INDEX 01 and its
 * PREGAP are the lead-in's two seconds, not on the disc. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "optical/cue.h"

#define FAIL(line, ...) fail(err, name, line, __VA_ARGS__)

static __attribute__((format(printf, 4, 5))) int fail(struct scuse_err *err, const char *name,
                                                       unsigned line, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return err_set(err, -EINVAL, "'%s' line %u: %s", name, line, msg);
}

/* The frame a track's stored sectors begin at in its file. */
static uint32_t first_frame(const struct cue_track *t)
{
    return (uint32_t)(t->index0 >= 0 ? t->index0 : t->index1);
}

#define MAX_DISC_SECTORS (1u << 31)         /* with DVD-sized tracks: 4 TiB of data */

int cue_layout(const struct cue_sheet *cs, const uint64_t *file_size, const char *name,
               struct optical_disc *d, struct scuse_err *err)
{
    memset(d, 0, sizeof(*d));
    uint64_t lba = 0;
    bool xa = false;
    for (unsigned i = 0; i < cs->n_tracks; i++) {
        const struct cue_track *t = &cs->track[i];
        const struct cue_track *prev = i ? &cs->track[i - 1] : NULL;
        const struct cue_track *next = i + 1 < cs->n_tracks ? &cs->track[i + 1] : NULL;
        struct optical_track *o = &d->track[i];
        uint64_t fsize = file_size[t->file];

        /* Byte offset of the first stored sector. */
        uint64_t off;
        uint32_t ff = first_frame(t);
        if (next && next->file == t->file && first_frame(next) <= (uint32_t)t->index1)
            return FAIL(next->index1_line, "INDEX: track %02u starts at frame %u, not after "
                        "track %02u's INDEX 01 (frame %d): the tracks overlap", next->number,
                        first_frame(next), t->number, t->index1);
        if (prev && prev->file == t->file)
            off = d->track[i - 1].file_off + (uint64_t)(ff - first_frame(prev)) *
                                                 prev->sector_size;
        else
            off = (uint64_t)ff * t->sector_size;
        /* Sectors stored for it: to the next track of the file, or to the
         * end of the file. */
        uint64_t stored;
        if (next && next->file == t->file) {
            stored = first_frame(next) > ff ? first_frame(next) - ff : 0;
        } else {
            if (off >= fsize)
                return FAIL(t->index1_line, "INDEX: track %02u starts at byte %llu, past the "
                            "end of '%s' (%llu bytes)", t->number, (unsigned long long)off,
                            cs->file[t->file], (unsigned long long)fsize);
            stored = (fsize - off) / t->sector_size;
        }
        uint32_t skip = (uint32_t)t->index1 - ff;   /* stored pregap (INDEX 00 to 01) */
        if (stored <= skip)
            return FAIL(t->index1_line, "INDEX 01: track %02u holds no sector after it",
                        t->number);
        if (off + stored * t->sector_size > fsize)
            return FAIL(t->index1_line, "INDEX: track %02u ends past the end of '%s' (%llu "
                        "bytes)", t->number, cs->file[t->file], (unsigned long long)fsize);

        o->number = t->number;
        o->mode = t->mode;
        o->ctl = (uint8_t)((t->mode == OPTICAL_AUDIO ? 0x00 : 0x04) | t->flags);
        o->file = t->file;
        o->sector_size = t->sector_size;
        o->data_off = t->data_off;
        xa |= t->mode == OPTICAL_MODE2;
        if (i == 0) {
            /* Track 1's INDEX 01 is LBA 0: its pregap is the lead-in. */
            off += (uint64_t)skip * t->sector_size;
            stored -= skip;
            skip = 0;
            o->pregap = 0;
        } else {
            o->pregap = (uint32_t)lba;
            lba += t->pregap;
        }
        o->stored_lba = (uint32_t)lba;
        o->file_off = off;
        o->start = (uint32_t)(lba + skip);
        lba += stored;
        o->stored_end = (uint32_t)lba;
        lba += t->postgap;
        o->end = (uint32_t)lba;
        if (lba > MAX_DISC_SECTORS)
            return FAIL(t->line, "TRACK %02u: the disc would exceed %u sectors", t->number,
                        MAX_DISC_SECTORS);
    }
    d->n_tracks = cs->n_tracks;
    d->leadout = (uint32_t)lba;
    d->disc_type = xa ? 0x20 : 0x00;
    return 0;
}
