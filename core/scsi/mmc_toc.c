/* READ TOC/PMA/ATIP (formats 0, 1, 2), READ DISC INFORMATION and READ
 * TRACK INFORMATION: the disc's layout from its track list (an ISO: one
 * Mode 1 track; a CUE sheet: its tracks), answered in prepare while the
 * command holds the medium. */
#include <string.h>

#include "optical/disc.h"
#include "scsi/mmc.h"

#define LEADOUT_TRACK 0xaa
/* The longest answer: format 2's A0, A1, A2 and every track, 11 bytes
 * each (format 0's 8 bytes a track and the lead-out is shorter). */
#define TOC_MAX (4 + 11 * (OPTICAL_MAX_TRACKS + 3))
_Static_assert(TOC_MAX >= 4 + 8 * (OPTICAL_MAX_TRACKS + 1), "format 0 fits");

static void put_addr(uint8_t *p, uint32_t lba, bool msf)
{
    if (!msf) {
        put_be32(p, lba);
        return;
    }
    p[0] = 0;
    optical_msf(lba, &p[1], &p[2], &p[3]);
}

static uint8_t adr_ctl(uint8_t ctl) { return (uint8_t)(0x10 | (ctl & 0x0f)); }

/* Format 0: the tracks from `first` on, then the lead-out. */
static size_t toc_tracks(const struct optical_disc *d, unsigned first, bool msf, uint8_t *b)
{
    size_t off = 4;
    const struct optical_track *last = &d->track[d->n_tracks - 1];
    for (unsigned i = 0; i < d->n_tracks; i++) {
        const struct optical_track *t = &d->track[i];
        if (t->number < first)
            continue;
        uint8_t *e = b + off;
        memset(e, 0, 8);
        e[1] = adr_ctl(t->ctl);
        e[2] = t->number;
        put_addr(e + 4, t->start, msf);
        off += 8;
    }
    uint8_t *e = b + off;
    memset(e, 0, 8);
    e[1] = adr_ctl(last->ctl);
    e[2] = LEADOUT_TRACK;
    put_addr(e + 4, d->leadout, msf);
    off += 8;
    b[2] = d->track[0].number;
    b[3] = last->number;
    return off;
}

/* Format 1: one session; its first track. */
static size_t toc_session(const struct optical_disc *d, bool msf, uint8_t *b)
{
    memset(b, 0, 12);
    b[2] = 1;
    b[3] = 1;
    b[5] = adr_ctl(d->track[0].ctl);
    b[6] = d->track[0].number;
    put_addr(b + 8, d->track[0].start, msf);
    return 12;
}

static uint8_t *raw_entry(uint8_t *e, uint8_t ctl, uint8_t point)
{
    memset(e, 0, 11);
    e[0] = 1;                       /* session */
    e[1] = adr_ctl(ctl);
    e[3] = point;
    return e;
}

/* Format 2: the lead-in's Q sub-channel: A0 (first track, disc type), A1
 * (last track), A2 (lead-out), then every track; addresses in MSF. */
static size_t toc_raw(const struct optical_disc *d, uint8_t *b)
{
    size_t off = 4;
    const struct optical_track *first = &d->track[0], *last = &d->track[d->n_tracks - 1];
    uint8_t *e = raw_entry(b + off, first->ctl, 0xa0);
    e[8] = first->number;
    e[9] = d->disc_type;
    off += 11;
    e = raw_entry(b + off, last->ctl, 0xa1);
    e[8] = last->number;
    off += 11;
    e = raw_entry(b + off, last->ctl, 0xa2);
    optical_msf(d->leadout, &e[8], &e[9], &e[10]);
    off += 11;
    for (unsigned i = 0; i < d->n_tracks; i++) {
        const struct optical_track *t = &d->track[i];
        e = raw_entry(b + off, t->ctl, t->number);
        optical_msf(t->start, &e[8], &e[9], &e[10]);
        off += 11;
    }
    b[2] = 1;
    b[3] = 1;
    return off;
}

SCSI_HANDLER(mmc_prep_read_toc)
{
    const uint8_t *cdb = cmd->cdb;
    bool msf = cdb[1] & 0x02;
    unsigned format = cdb[2] & 0x0f, number = cdb[6];
    size_t alloc = get_be16(cdb + 7);
    /* Format 0 with the control byte's vendor bits 40h/80h: SFF-8020's
     * way of asking formats 1 and 2, which Linux sr uses. */
    if (format == 0 && (cdb[9] & 0xc0))
        format = (cdb[9] & 0xc0) >> 6;
    const struct optical_disc *d = lun->disc;
    uint8_t b[TOC_MAX];
    size_t n;
    switch (format) {
    case 0:
        if (number > d->track[d->n_tracks - 1].number && number != LEADOUT_TRACK) {
            scsi_fail_cdb(lun, cmd, 6, -1);
            return;
        }
        n = number == LEADOUT_TRACK ? toc_tracks(d, 0x100, msf, b) : toc_tracks(d, number, msf, b);
        break;
    case 1:
        n = toc_session(d, msf, b);
        break;
    case 2:
        if (number > 1) {
            scsi_fail_cdb(lun, cmd, 6, -1);
            return;
        }
        n = toc_raw(d, b);
        break;
    default:
        scsi_fail_cdb(lun, cmd, 2, 3);
        return;
    }
    put_be16(b, (uint16_t)(n - 2));
    scsi_reply(cmd, b, n, alloc);
}

SCSI_HANDLER(mmc_prep_disc_info)
{
    const uint8_t *cdb = cmd->cdb;
    if (cdb[1] & 0x07) {            /* data type: only standard disc information */
        scsi_fail_cdb(lun, cmd, 1, 2);
        return;
    }
    const struct optical_disc *d = lun->disc;
    uint8_t b[34];
    memset(b, 0, sizeof(b));
    put_be16(b, sizeof(b) - 2);
    b[2] = 0x0e;                    /* last session complete, disc finalized */
    b[3] = d->track[0].number;      /* first track on the disc */
    b[4] = 1;                       /* sessions */
    b[5] = d->track[0].number;      /* first and last track of the last session */
    b[6] = d->track[d->n_tracks - 1].number;
    b[7] = 0x20;                    /* URU: unrestricted use */
    b[8] = d->disc_type;
    scsi_reply(cmd, b, sizeof(b), get_be16(cdb + 7));
}

SCSI_HANDLER(mmc_prep_track_info)
{
    const uint8_t *cdb = cmd->cdb;
    unsigned type = cdb[1] & 0x03;
    uint32_t number = get_be32(cdb + 2);
    const struct optical_disc *d = lun->disc;
    const struct optical_track *t = NULL;
    switch (type) {
    case 0:                         /* the track holding an LBA */
        t = optical_track_at(d, number);
        break;
    case 1:                         /* by number */
        for (unsigned i = 0; i < d->n_tracks; i++)
            if (d->track[i].number == number)
                t = &d->track[i];
        break;
    case 2:                         /* the first track of session 1 */
        if (number == 1)
            t = &d->track[0];
        break;
    default:
        scsi_fail_cdb(lun, cmd, 1, 1);
        return;
    }
    if (!t) {
        scsi_fail_cdb(lun, cmd, 2, -1);
        return;
    }
    uint8_t b[36];
    memset(b, 0, sizeof(b));
    put_be16(b, sizeof(b) - 2);
    b[2] = t->number;
    b[3] = 1;                       /* session */
    b[5] = t->ctl & 0x0f;           /* track mode: the CONTROL nibble */
    b[6] = t->mode == OPTICAL_AUDIO ? 0x0f : t->mode == OPTICAL_MODE1 ? 0x01 : 0x02;
    put_be32(b + 8, t->start);
    put_be32(b + 24, t->end - t->start);        /* track size */
    scsi_reply(cmd, b, sizeof(b), get_be16(cdb + 7));
}
