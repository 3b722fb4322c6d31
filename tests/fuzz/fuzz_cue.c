/* libFuzzer target: CUE sheets (formats/optical: cue_parse, cue_layout)
 * on arbitrary bytes.
 *
 * The input is the sheet's text; file sizes for the layout are taken from
 * its last bytes (so the fuzzer also explores short and odd-sized BINs).
 * Besides ASan/UBSan findings, the target aborts on broken promises:
 *   - a failure without a message, on more than one line, or one that
 *     does not name the sheet ('fuzz.cue' ...);
 *   - a parse that succeeds with no track, a track without INDEX 01, or
 *     tracks not numbered one after the other;
 *   - a layout that succeeds with tracks out of order or overlapping, a
 *     track without a sector at or after its start, stored sectors that
 *     do not fit their file, or a lead-out other than the last end.
 * tests/fuzz/seeds_cue.py writes the seeds. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optical/cue.h"

static void die(const char *what, const char *detail)
{
    fprintf(stdout, "fuzz_cue: %s: %s\n", what, detail);
    fflush(stdout);
    abort();
}

static void check_err(const struct scuse_err *err)
{
    if (!err->msg[0])
        die("failure without a message", "");
    if (strchr(err->msg, '\n'))
        die("message on several lines", err->msg);
    if (strncmp(err->msg, "'fuzz.cue'", 10) != 0)
        die("message does not name the sheet", err->msg);
}

static void check_disc(const struct cue_sheet *cs, const uint64_t *size,
                       const struct optical_disc *d)
{
    uint32_t at = 0;
    for (unsigned i = 0; i < d->n_tracks; i++) {
        const struct optical_track *t = &d->track[i];
        if (t->number != cs->track[i].number)
            die("track number changed", "");
        if (t->pregap < at || t->pregap > t->stored_lba || t->stored_lba > t->start ||
            t->start >= t->stored_end || t->stored_end > t->end)
            die("track out of order or empty", "");
        uint64_t bytes = (uint64_t)(t->stored_end - t->stored_lba) * t->sector_size;
        if (t->file < 0 || t->file_off + bytes > size[t->file])
            die("stored sectors past the end of their file", "");
        at = t->end;
    }
    if (d->leadout != at)
        die("lead-out is not the last track's end", "");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    static struct cue_sheet cs;
    struct scuse_err err = { 0 };
    if (cue_parse((const char *)data, len, "fuzz.cue", &cs, &err) < 0) {
        check_err(&err);
        return 0;
    }
    if (cs.n_tracks == 0)
        die("parsed without a track", "");
    for (unsigned i = 0; i < cs.n_tracks; i++) {
        if (cs.track[i].index1 < 0)
            die("a track without INDEX 01", "");
        if (i && cs.track[i].number != cs.track[i - 1].number + 1)
            die("tracks not in order", "");
        if (cs.track[i].file < 0 || (unsigned)cs.track[i].file >= cs.n_files)
            die("a track without its file", "");
    }
    uint64_t size[OPTICAL_MAX_FILES];
    for (unsigned i = 0; i < OPTICAL_MAX_FILES; i++) {
        uint8_t b = len ? data[(len - 1 - i % len)] : 0;
        size[i] = (uint64_t)b * 2352 * 3 + (b & 7) * 512;
    }
    static struct optical_disc d;
    memset(&err, 0, sizeof(err));
    if (cue_layout(&cs, size, "fuzz.cue", &d, &err) < 0) {
        check_err(&err);
        return 0;
    }
    check_disc(&cs, size, &d);
    return 0;
}
