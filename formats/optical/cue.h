/* CUE sheets: the text (cue_parse.c) and the disc it lays out over its
 * BIN files (cue_layout.c). Both are pure (no I/O), for the driver and
 * the fuzzer alike. Errors are one line naming the sheet, the line and
 * the field: "'disc.cue' line 7: INDEX 01: ...". */
#ifndef SCUSE_OPTICAL_CUE_H
#define SCUSE_OPTICAL_CUE_H

#include <stddef.h>

#include "optical/disc.h"
#include "util/err.h"

#define CUE_MAX_BYTES (1u << 20)    /* a longer sheet is refused */
#define CUE_NAME_MAX 1024

struct cue_track {
    uint8_t number;
    enum optical_mode mode;
    uint32_t sector_size, data_off;
    uint8_t flags;                  /* CONTROL bits from FLAGS: PRE 1, DCP 2, 4CH 8 */
    int file;                       /* index into cue_sheet.file */
    int32_t index0;                 /* frames into the file; -1: no INDEX 00 */
    int32_t index1;                 /* frames into the file; -1 until read */
    uint32_t pregap, postgap;       /* generated frames (PREGAP, POSTGAP) */
    unsigned line;                  /* of the TRACK line, for layout errors */
    unsigned index1_line;
};

struct cue_sheet {
    unsigned n_files, n_tracks;
    char file[OPTICAL_MAX_FILES][CUE_NAME_MAX];   /* as written in the sheet */
    unsigned file_line[OPTICAL_MAX_FILES];
    struct cue_track track[OPTICAL_MAX_TRACKS];
};

/* Parse len bytes of sheet text; name is the sheet's for messages. */
int cue_parse(const char *text, size_t len, const char *name, struct cue_sheet *cs,
              struct scuse_err *err);
/* Lay the tracks out over files of these byte sizes (file_size[i] for
 * cs->file[i]) into d, with file offsets; refuses tracks that overlap,
 * lie past their file's end, or hold no sector. */
int cue_layout(const struct cue_sheet *cs, const uint64_t *file_size, const char *name,
               struct optical_disc *d, struct scuse_err *err);

#endif
