/* The track list of a disc: lookups by address and the ISO's one track. */
#include <string.h>

#include "optical/disc.h"

void optical_disc_iso(struct optical_disc *d, uint32_t blocks)
{
    memset(d, 0, sizeof(*d));
    d->n_tracks = 1;
    d->leadout = blocks;
    d->disc_type = 0x00;
    struct optical_track *t = &d->track[0];
    t->number = 1;
    t->mode = OPTICAL_MODE1;
    t->ctl = 0x04;
    t->pregap = 0;
    t->start = 0;
    t->end = blocks;
    t->file = -1;
    t->sector_size = OPTICAL_USER;
    t->data_off = 0;
}

const struct optical_track *optical_track_at(const struct optical_disc *d, uint32_t lba)
{
    for (unsigned i = 0; i < d->n_tracks; i++)
        if (lba >= d->track[i].pregap && lba < d->track[i].end)
            return &d->track[i];
    return NULL;
}

bool optical_range_is_data(const struct optical_disc *d, uint32_t lba, uint32_t n)
{
    uint64_t end = (uint64_t)lba + n;
    while (lba < end) {
        const struct optical_track *t = optical_track_at(d, lba);
        if (!t || t->mode == OPTICAL_AUDIO)
            return false;
        lba = t->end;
    }
    return true;
}

void optical_msf(uint32_t lba, uint8_t *m, uint8_t *s, uint8_t *f)
{
    uint32_t a = lba + OPTICAL_LEAD_IN_FRAMES;
    *f = (uint8_t)(a % 75);
    *s = (uint8_t)(a / 75 % 60);
    uint32_t min = a / 75 / 60;
    *m = (uint8_t)(min > 255 ? 255 : min);
}
