/* A disc as an optical drive shows it: tracks, their modes and addresses,
 * the lead-out, and where each sector's bytes lie in the image files.
 *
 * Addresses are LBAs (sector 0 = the first sector of track 1, MSF
 * 00:02:00); a sector is 2352 raw bytes of which a data track carries
 * 2048 bytes of user data (Mode 1, Mode 2 Form 1). An ISO is a disc of
 * one Mode 1 track (optical_disc_iso); a CUE sheet (cue_parse.c) gives
 * any number of tracks over BIN files, opened as block nodes by the cue
 * driver (cue_driver.c), whose node reads as the discs's user data,
 * 2048 bytes per LBA (zeros where a sector has none: audio, gaps). */
#ifndef SCUSE_OPTICAL_DISC_H
#define SCUSE_OPTICAL_DISC_H

#include <stdbool.h>
#include <stdint.h>

#include "blk/blk.h"

#define OPTICAL_USER 2048           /* user data of a Mode 1 / Mode 2 Form 1 sector */
#define OPTICAL_RAW 2352            /* a whole sector (and an audio frame) */
#define OPTICAL_LEAD_IN_FRAMES 150  /* MSF 00:02:00 is LBA 0 */
#define OPTICAL_MAX_TRACKS 99
#define OPTICAL_MAX_FILES 99

enum optical_mode {
    OPTICAL_AUDIO,                  /* CD-DA: 2352 bytes of samples, no user data */
    OPTICAL_MODE1,                  /* 2048 bytes of data at 16 in the raw sector */
    OPTICAL_MODE2,                  /* XA Mode 2 (Form 1 read: data at 24) */
};

struct optical_track {
    uint8_t number;                 /* 1..99 */
    enum optical_mode mode;
    uint8_t ctl;                    /* Q sub-channel CONTROL: 4 data, 0 audio (+ flags) */
    uint32_t pregap;                /* LBA where the track's pregap (index 0) starts */
    uint32_t start;                 /* LBA of index 1 */
    uint32_t end;                   /* LBA after its last sector */
    /* The stored sectors [stored_lba, stored_end): in file `file` from
     * byte file_off, sector_size bytes each, user data at data_off in
     * each; the others (a PREGAP or POSTGAP the file does not hold) are
     * zeros. file -1: none stored (the ISO's track reads the node). */
    int file;
    uint32_t stored_lba, stored_end;
    uint64_t file_off;
    uint32_t sector_size;           /* 2048, 2336 or 2352 */
    uint32_t data_off;              /* 0, 8, 16 or 24 */
};

struct optical_disc {
    unsigned n_tracks;
    struct optical_track track[OPTICAL_MAX_TRACKS];
    uint32_t leadout;               /* LBA of the lead-out: the disc's size in sectors */
    uint8_t disc_type;              /* session format: 00h CD-DA/CD-ROM, 20h CD-ROM XA */
};

/* A disc of one Mode 1 track of `blocks` 2048-byte sectors. */
void optical_disc_iso(struct optical_disc *d, uint32_t blocks);
/* The track holding lba (its pregap included), or NULL past the end. */
const struct optical_track *optical_track_at(const struct optical_disc *d, uint32_t lba);
/* Whether every sector of [lba, lba + n) has 2048 bytes of user data
 * (a data track, not its pregap when that is a gap between modes). */
bool optical_range_is_data(const struct optical_disc *d, uint32_t lba, uint32_t n);
/* Absolute address (LBA + 150) as minutes, seconds, frames. */
void optical_msf(uint32_t lba, uint8_t *m, uint8_t *s, uint8_t *f);

/* Raw sectors (sector.c): a whole 2352-byte Mode 1 sector around 2048
 * bytes of user data at lba: sync, header (BCD MSF, mode 1), data, EDC,
 * zeros, ECC P and Q (ECMA-130). */
void optical_mode1_sector(uint32_t lba, const uint8_t *user, uint8_t *raw);
/* The EDC (ECMA-130 CRC-32) of len bytes. */
uint32_t optical_edc(const uint8_t *p, size_t len);

/* The disc a block node holds: the cue driver's track list, or NULL for
 * any other format (a plain image is an ISO: optical_disc_iso). */
const struct optical_disc *optical_disc_of(const struct blk_node *bs);
/* Read one stored sector's bytes [off, off + len) of track t at lba
 * (cue nodes only; -EINVAL elsewhere). */
int optical_read_stored(struct blk_node *bs, const struct optical_track *t, uint32_t lba,
                        uint32_t off, void *buf, uint32_t len, struct scuse_err *err);

#endif
