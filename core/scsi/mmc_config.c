/* GET CONFIGURATION (profiles and features), GET EVENT STATUS
 * NOTIFICATION (polled; the media class), MECHANISM STATUS, GET
 * PERFORMANCE and SET CD SPEED: what the drive is and how its medium
 * stands, answered in prepare. None needs the medium; those that describe
 * it hold it for the answer when it is there. */
#include <string.h>

#include "optical/disc.h"
#include "scsi/mmc.h"

#define PROFILE_NONE 0x0000
#define PROFILE_CD_ROM 0x0008
#define PROFILE_DVD_ROM 0x0010
/* Above a CD's 80 minutes the disc is a DVD (QEMU's rule: 1,440,000
 * 512-byte sectors). */
#define CD_MAX_BLOCKS 360000u
#define SPEED_X 176
#define MAX_SPEED (50 * SPEED_X)

/* The current profile: no medium, CD-ROM or DVD-ROM by size. */
static uint16_t current_profile(struct scsi_lun *lun)
{
    struct scsi_sense s;
    if (!scsi_medium_get(lun, &s))
        return PROFILE_NONE;
    uint64_t blocks = __atomic_load_n(&lun->blocks, __ATOMIC_ACQUIRE);
    scsi_medium_put(lun);
    return blocks > CD_MAX_BLOCKS ? PROFILE_DVD_ROM : PROFILE_CD_ROM;
}

/* One feature descriptor: header and additional bytes. */
struct feature {
    uint16_t code;
    uint8_t version;
    bool persistent, current;
    uint8_t len;
    uint8_t data[12];
};

static unsigned features(uint16_t profile, struct feature *f)
{
    bool cd = profile == PROFILE_CD_ROM, dvd = profile == PROFILE_DVD_ROM;
    unsigned n = 0;
    /* Profile list: DVD-ROM, CD-ROM (highest number first). */
    f[n] = (struct feature){ 0x0000, 0, true, true, 8,
                             { 0x00, 0x10, dvd, 0, 0x00, 0x08, cd, 0 } };
    n++;
    /* Core: SCSI interface, DBE (the drive reports unrecoverable errors). */
    f[n] = (struct feature){ 0x0001, 2, true, true, 8, { 0, 0, 0, 1, 0x01, 0, 0, 0 } };
    n++;
    /* Morphing: media events through polled GESN only. */
    f[n] = (struct feature){ 0x0002, 1, true, true, 4, { 0 } };
    n++;
    /* Removable medium (version 2: with the Load bit): tray, Load, Eject,
     * lockable. */
    f[n] = (struct feature){ 0x0003, 2, true, true, 4, { 0x39, 0, 0, 0 } };
    n++;
    /* Random readable: 2048-byte blocks, blocking 1 (CD) or 16 (DVD). */
    f[n] = (struct feature){ 0x0010, 0, false, cd || dvd, 8,
                             { 0, 0, 0x08, 0, 0, dvd ? 16 : 1, 0, 0 } };
    n++;
    f[n] = (struct feature){ 0x001d, 0, false, cd, 0, { 0 } };  /* multi-read */
    n++;
    f[n] = (struct feature){ 0x001e, 2, false, cd, 4, { 0 } };  /* CD read */
    n++;
    f[n] = (struct feature){ 0x001f, 1, false, dvd, 4, { 0 } }; /* DVD read */
    n++;
    return n;
}

SCSI_HANDLER(mmc_prep_get_configuration)
{
    const uint8_t *cdb = cmd->cdb;
    unsigned rt = cdb[1] & 0x03;
    uint16_t sfn = get_be16(cdb + 2);
    if (rt == 3) {
        scsi_fail_cdb(lun, cmd, 1, 1);
        return;
    }
    uint16_t profile = current_profile(lun);
    struct feature f[8];
    unsigned nf = features(profile, f);
    uint8_t b[8 + 8 * 16];
    memset(b, 0, sizeof(b));
    size_t off = 8;
    for (unsigned i = 0; i < nf; i++) {
        bool want = rt == 2 ? f[i].code == sfn : f[i].code >= sfn && (rt == 0 || f[i].current);
        if (!want)
            continue;
        uint8_t *d = b + off;
        put_be16(d, f[i].code);
        d[2] = (uint8_t)(f[i].version << 2 | (f[i].persistent ? 0x02 : 0) |
                         (f[i].current ? 0x01 : 0));
        d[3] = f[i].len;
        memcpy(d + 4, f[i].data, f[i].len);
        off += 4u + f[i].len;
    }
    put_be32(b, (uint32_t)(off - 4));
    put_be16(b + 6, profile);
    scsi_reply(cmd, b, off, get_be16(cdb + 7));
}

#define GESN_MEDIA_CLASS 4

SCSI_HANDLER(mmc_prep_gesn)
{
    const uint8_t *cdb = cmd->cdb;
    size_t alloc = get_be16(cdb + 7);
    if (!(cdb[1] & 0x01)) {         /* asynchronous notification: not offered */
        scsi_fail_cdb(lun, cmd, 1, 0);
        return;
    }
    uint8_t b[8];
    memset(b, 0, sizeof(b));
    b[3] = 1u << GESN_MEDIA_CLASS;  /* supported classes: media */
    if (!(cdb[4] & (1u << GESN_MEDIA_CLASS))) {
        put_be16(b, 0);             /* no event descriptor follows the header */
        b[2] = 0x80;                /* NEA: no class asked for is supported */
        scsi_reply(cmd, b, 4, alloc);
        return;
    }
    put_be16(b, 4);                 /* the media event descriptor after the header */
    b[2] = GESN_MEDIA_CLASS;
    b[4] = scsi_lun_take_media_event(lun);
    switch (scsi_lun_medium_state(lun)) {
    case SCSI_MEDIUM_PRESENT: b[5] = 0x02; break;
    case SCSI_MEDIUM_TRAY_OPEN: b[5] = 0x01; break;
    case SCSI_MEDIUM_ABSENT: b[5] = 0x00; break;
    }
    scsi_reply(cmd, b, sizeof(b), alloc);
}

SCSI_HANDLER(mmc_prep_mechanism_status)
{
    uint8_t b[8];
    memset(b, 0, sizeof(b));
    if (scsi_lun_medium_state(lun) == SCSI_MEDIUM_TRAY_OPEN)
        b[1] = 0x10;                /* door open */
    b[5] = 1;                       /* slots: the one tray (as QEMU's drive says) */
    scsi_reply(cmd, b, sizeof(b), get_be16(cmd->cdb + 8));
}

/* Type 0 (performance), reads: one descriptor, the whole disc at the
 * maximum speed. Writes and other types: none to report. */
SCSI_HANDLER(mmc_prep_get_performance)
{
    const uint8_t *cdb = cmd->cdb;
    unsigned type = cdb[10], max = get_be16(cdb + 8);
    bool write = cdb[1] & 0x04;
    if (type != 0 && type != 3) {
        scsi_fail_cdb(lun, cmd, 10, -1);
        return;
    }
    uint8_t b[8 + 16];
    memset(b, 0, sizeof(b));
    size_t n = 8;
    if (type == 0 && !write && max > 0) {
        uint8_t *d = b + 8;
        uint64_t blocks = __atomic_load_n(&lun->blocks, __ATOMIC_ACQUIRE);
        put_be32(d, 0);
        put_be32(d + 4, MAX_SPEED);
        put_be32(d + 8, (uint32_t)(blocks ? blocks - 1 : 0));
        put_be32(d + 12, MAX_SPEED);
        n += 16;
    }
    put_be32(b, (uint32_t)(n - 4));
    if (write)
        b[4] = 0x02;
    /* The allocation length is in descriptors: the reply is what fits. */
    scsi_reply(cmd, b, n, n);
}

/* The speed asked is noted by no one: an image reads as fast as it can. */
SCSI_HANDLER(mmc_prep_set_cd_speed)
{
    (void)lun;
    scsi_good(cmd, 0, 0);
}
