/* The MMC commands of a cdrom LUN at the CDB level, over an ISO (one Mode
 * 1 track) and over a CUE/BIN of three tracks (Mode 1/2352 data, audio
 * with an INDEX 00 pregap, audio after a PREGAP): READ TOC formats 0, 1,
 * 2 (LBA and MSF, the SFF-8020 control bits), READ DISC and TRACK
 * INFORMATION, GET CONFIGURATION (profiles by size, RT and starting
 * feature), GET EVENT STATUS NOTIFICATION, MECHANISM STATUS, GET
 * PERFORMANCE, SET CD SPEED, READ CD (user data and whole sectors),
 * READ(10) refused on audio, REPORT SUPPORTED OPERATION CODES and the
 * command policy, and refused CDB bits. */
#include "test_scsi_util.h"

#include <errno.h>

#include "optical/disc.h"

#define BLK 2048
#define RAW 2352

static int setup(void **state)
{
    (void)state;
    return tu_mkdtemp(ts_dir, sizeof(ts_dir), "/tmp/scuse-test-mmc-") ? 0 : -1;
}

static void fill_block(uint8_t *b, uint32_t lba)
{
    for (unsigned i = 0; i < BLK; i++)
        b[i] = (uint8_t)(lba * 7 + i / 8);
}

static void make_iso(const char *name, unsigned n)
{
    uint8_t *b = malloc((size_t)n * BLK);
    assert_non_null(b);
    for (unsigned i = 0; i < n; i++)
        fill_block(b + (size_t)i * BLK, i);
    ts_store(name, b, (size_t)n * BLK);
    free(b);
}

static struct scsi_lun *cdrom_over(const char *name, const char *fmt, struct blk_node **bs,
                                   const char *policy)
{
    struct scuse_err err = { 0 };
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.device = SCSI_DEVICE_CDROM;
    if (policy && scsi_policy_parse(policy, &cfg, &err) < 0)
        fail_msg("policy: %s", err.msg);
    struct ts_lun t = ts_open_cfg(name, fmt, &cfg, false);
    *bs = t.bs;
    return t.lun;
}

#define ISO_BLOCKS 300

static void test_toc_iso(void **state)
{
    (void)state;
    make_iso("t.iso", ISO_BLOCKS);
    struct blk_node *bs;
    struct scsi_lun *lun = cdrom_over("t.iso", "raw", &bs, NULL);
    uint8_t b[256];
    /* Format 0, LBA: track 1 at 0 (data, 14h), lead-out AAh at 300. */
    uint8_t toc[10] = { 0x43, 0, 0, 0, 0, 0, 0, 0, 0xfc, 0 };
    struct ts_res r = TS_IN(lun, toc, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 20);
    assert_int_equal(ts_get(b, 2), 18);
    assert_int_equal(b[2], 1);
    assert_int_equal(b[3], 1);
    assert_int_equal(b[5], 0x14);
    assert_int_equal(b[6], 1);
    assert_int_equal(ts_get(b + 8, 4), 0);
    assert_int_equal(b[13], 0x14);
    assert_int_equal(b[14], 0xaa);
    assert_int_equal(ts_get(b + 16, 4), ISO_BLOCKS);
    /* MSF: 00:02:00 and 300 + 150 = 450 frames = 00:06:00. */
    toc[1] = 0x02;
    r = TS_IN(lun, toc, b, sizeof(b));
    ts_good(&r);
    assert_memory_equal(b + 8, ((uint8_t[]){ 0, 0, 2, 0 }), 4);
    assert_memory_equal(b + 16, ((uint8_t[]){ 0, 0, 6, 0 }), 4);
    /* Only the lead-out; a track past the last is refused. */
    toc[1] = 0;
    toc[6] = 0xaa;
    r = TS_IN(lun, toc, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 12);
    assert_int_equal(b[6], 0xaa);
    toc[6] = 2;
    r = TS_IN(lun, toc, b, sizeof(b));
    TS_INVALID_CDB(r, 6, -1);
    toc[6] = 0;
    /* Allocation length 2 (Linux asks the length first). */
    toc[8] = 2;
    r = TS_IN(lun, toc, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 2);
    toc[8] = 0xfc;
    /* Format 1 through the control byte 40h (Linux's sr_cd_check), and
     * directly: session 1, track 1 at 0. */
    uint8_t ms[10] = { 0x43, 0, 0, 0, 0, 0, 0, 0, 0x0c, 0x40 };
    r = TS_IN(lun, ms, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 12);
    assert_int_equal(ts_get(b, 2), 10);
    assert_int_equal(b[2], 1);
    assert_int_equal(b[3], 1);
    assert_int_equal(b[6], 1);
    assert_int_equal(ts_get(b + 8, 4), 0);
    ms[9] = 0;
    ms[2] = 1;
    uint8_t b2[256];
    r = TS_IN(lun, ms, b2, sizeof(b2));
    ts_good(&r);
    assert_memory_equal(b, b2, 12);
    /* Format 2 (raw, also as 80h): A0, A1, A2, track 1, in MSF. */
    uint8_t raw[10] = { 0x43, 0, 0x02, 0, 0, 0, 0, 0, 0xfc, 0 };
    r = TS_IN(lun, raw, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 4 + 4 * 11);
    assert_int_equal(b[4 + 3], 0xa0);
    assert_int_equal(b[4 + 8], 1);          /* first track */
    assert_int_equal(b[4 + 9], 0x00);       /* CD-ROM */
    assert_int_equal(b[15 + 3], 0xa1);
    assert_int_equal(b[15 + 8], 1);
    assert_int_equal(b[26 + 3], 0xa2);
    assert_memory_equal(b + 26 + 8, ((uint8_t[]){ 0, 6, 0 }), 3);
    assert_int_equal(b[37 + 3], 1);
    assert_memory_equal(b + 37 + 8, ((uint8_t[]){ 0, 2, 0 }), 3);
    raw[2] = 0;
    raw[9] = 0x80;
    r = TS_IN(lun, raw, b2, sizeof(b2));
    ts_good(&r);
    assert_memory_equal(b, b2, 48);
    /* Formats 3 and above are refused; reserved bits too. */
    uint8_t f3[10] = { 0x43, 0, 0x03, 0, 0, 0, 0, 0, 0xfc, 0 };
    r = TS_IN(lun, f3, b, sizeof(b));
    TS_INVALID_CDB(r, 2, 3);
    uint8_t res[10] = { 0x43, 0x01, 0, 0, 0, 0, 0, 0, 0xfc, 0 };
    r = TS_IN(lun, res, b, sizeof(b));
    TS_INVALID_CDB(r, 1, 0);

    /* Disc information: complete, finalized, one session of track 1. */
    uint8_t di[10] = { 0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0 };
    r = TS_IN(lun, di, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 34);
    assert_int_equal(ts_get(b, 2), 32);
    assert_int_equal(b[2], 0x0e);
    assert_int_equal(b[3], 1);
    assert_int_equal(b[4], 1);
    assert_int_equal(b[6], 1);
    di[1] = 0x01;
    r = TS_IN(lun, di, b, sizeof(b));
    TS_INVALID_CDB(r, 1, 2);
    /* Track information by number and by LBA: start 0, size 300. */
    uint8_t ti[10] = { 0x52, 0x01, 0, 0, 0, 1, 0, 0, 36, 0 };
    r = TS_IN(lun, ti, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(b[2], 1);
    assert_int_equal(b[5] & 0x0f, 0x04);
    assert_int_equal(b[6] & 0x0f, 0x01);
    assert_int_equal(ts_get(b + 8, 4), 0);
    assert_int_equal(ts_get(b + 24, 4), ISO_BLOCKS);
    ti[1] = 0;
    ti[5] = 200;
    r = TS_IN(lun, ti, b2, sizeof(b2));
    ts_good(&r);
    assert_memory_equal(b, b2, 36);
    ti[1] = 0x01;
    ti[5] = 2;
    r = TS_IN(lun, ti, b, sizeof(b));
    TS_INVALID_CDB(r, 2, -1);

    scsi_lun_destroy(lun);
    blk_close(bs);
}

/* The features returned for RT/SFN: their codes, in order. */
static unsigned feature_codes(struct scsi_lun *lun, unsigned rt, uint16_t sfn, uint16_t *codes,
                              uint16_t *profile)
{
    uint8_t cdb[10] = { 0x46, (uint8_t)rt, (uint8_t)(sfn >> 8), (uint8_t)sfn, 0, 0, 0, 1, 0, 0 };
    uint8_t b[256];
    struct ts_res r = TS_IN(lun, cdb, b, sizeof(b));
    ts_good(&r);
    size_t len = ts_get(b, 4) + 4;
    assert_int_equal(len, r.xfer);
    *profile = (uint16_t)ts_get(b + 6, 2);
    unsigned n = 0;
    for (size_t off = 8; off < len; off += 4u + b[off + 3])
        codes[n++] = (uint16_t)ts_get(b + off, 2);
    return n;
}

static void test_configuration_events(void **state)
{
    (void)state;
    make_iso("c.iso", 64);
    struct blk_node *bs;
    struct scsi_lun *lun = cdrom_over("c.iso", "raw", &bs, NULL);
    uint16_t codes[16], profile;
    /* RT 0 from 0: every feature, CD-ROM current. */
    unsigned n = feature_codes(lun, 0, 0, codes, &profile);
    assert_int_equal(profile, 0x0008);
    assert_int_equal(n, 8);
    assert_int_equal(codes[0], 0x0000);
    assert_int_equal(codes[7], 0x001f);
    /* Linux asks from 0028h (MRW) and 0020h: nothing of those. */
    assert_int_equal(feature_codes(lun, 0, 0x28, codes, &profile), 0);
    assert_int_equal(feature_codes(lun, 0, 0x20, codes, &profile), 0);
    /* RT 1: current ones only (no DVD read on a CD); RT 2: just one. */
    n = feature_codes(lun, 1, 0x10, codes, &profile);
    assert_int_equal(n, 3);
    assert_int_equal(codes[2], 0x001e);
    n = feature_codes(lun, 2, 0x1f, codes, &profile);
    assert_int_equal(n, 1);
    assert_int_equal(codes[0], 0x001f);
    assert_int_equal(feature_codes(lun, 2, 0x99, codes, &profile), 0);
    uint8_t rt3[10] = { 0x46, 0x03, 0, 0, 0, 0, 0, 0, 8, 0 }, b[64];
    struct ts_res r = TS_IN(lun, rt3, b, sizeof(b));
    TS_INVALID_CDB(r, 1, 1);

    /* GESN: media class; present, no event. Asynchronous refused. */
    uint8_t gesn[10] = { 0x4a, 0x01, 0, 0, 0x10, 0, 0, 0, 8, 0 };
    r = TS_IN(lun, gesn, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 8);
    assert_int_equal(ts_get(b, 2), 4);     /* bytes after the 4-byte header (Linux checks) */
    assert_int_equal(b[2], 0x04);
    assert_int_equal(b[3], 0x10);
    assert_int_equal(b[4], 0);
    assert_int_equal(b[5], 0x02);
    uint8_t gesn_other[10] = { 0x4a, 0x01, 0, 0, 0x02, 0, 0, 0, 8, 0 };
    r = TS_IN(lun, gesn_other, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 4);
    assert_int_equal(b[2], 0x80);           /* NEA */
    uint8_t gesn_async[10] = { 0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8, 0 };
    r = TS_IN(lun, gesn_async, b, sizeof(b));
    TS_INVALID_CDB(r, 1, 0);

    /* Eject (host): MediaRemoval once, tray open; the unit attention
     * stays for TUR (GESN and GET CONFIGURATION do not take it). */
    struct blk_node *old;
    struct scuse_err err = { 0 };
    assert_int_equal(scsi_lun_medium_eject(lun, false, &old, &err), 0);
    r = TS_IN(lun, gesn, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(b[4], 3);
    assert_int_equal(b[5], 0x01);
    r = TS_IN(lun, gesn, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(b[4], 0);
    n = feature_codes(lun, 0, 0, codes, &profile);
    assert_int_equal(profile, 0);
    uint8_t tur[6] = { 0 };
    r = TS_NONE(lun, tur);
    ts_check(&r, 0x6, 0x3a, 0x00);
    uint8_t mech[12] = { 0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0 };
    r = TS_IN(lun, mech, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 8);
    assert_int_equal(b[1] & 0x10, 0x10);
    /* Insert: NewMedia once, present. */
    assert_int_equal(scsi_lun_medium_insert(lun, old, &err), 0);
    r = TS_IN(lun, gesn, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(b[4], 2);
    assert_int_equal(b[5], 0x02);
    r = TS_IN(lun, gesn, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(b[4], 0);
    r = TS_NONE(lun, tur);
    ts_check(&r, 0x6, 0x28, 0x00);
    r = TS_IN(lun, mech, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(b[1] & 0x10, 0);
    /* Host eject refused while locked: EjectRequest for the guest. */
    uint8_t prevent[6] = { 0x1e, 0, 0, 0, 1, 0 };
    r = TS_NONE(lun, prevent);
    ts_good(&r);
    assert_int_equal(scsi_lun_medium_eject(lun, false, &old, &err), -EBUSY);
    r = TS_IN(lun, gesn, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(b[4], 1);

    /* GET PERFORMANCE: one descriptor over the disc; SET CD SPEED. */
    uint8_t perf[12] = { 0xac, 0x10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0 };
    r = TS_IN(lun, perf, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 24);
    assert_int_equal(ts_get(b, 4), 20);
    assert_int_equal(ts_get(b + 16, 4), 63);
    assert_true(ts_get(b + 12, 4) > 0);
    perf[10] = 1;
    r = TS_IN(lun, perf, b, sizeof(b));
    TS_INVALID_CDB(r, 10, -1);
    uint8_t speed[12] = { 0xbb, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0 };
    r = TS_NONE(lun, speed);
    ts_good(&r);
    scsi_lun_destroy(lun);
    blk_close(bs);
}

static void test_dvd_profile(void **state)
{
    (void)state;
    /* 360001 blocks: past a CD's 80 minutes, a DVD (sparse file). */
    assert_int_equal(ts_sh("truncate -s %u dvd.iso", 360001u * BLK), 0);
    struct blk_node *bs;
    struct scsi_lun *lun = cdrom_over("dvd.iso", "raw", &bs, NULL);
    uint16_t codes[16], profile;
    unsigned n = feature_codes(lun, 1, 0x10, codes, &profile);
    assert_int_equal(profile, 0x0010);
    assert_int_equal(n, 2);
    assert_int_equal(codes[1], 0x001f);
    scsi_lun_destroy(lun);
    blk_close(bs);
}

/* A raw Mode 1 sector as a BIN stores it (EDC/ECC zero, as QEMU writes
 * them: the reader must not care). */
static void raw_mode1(uint8_t *s, uint32_t lba)
{
    memset(s, 0, RAW);
    memset(s + 1, 0xff, 10);
    uint8_t m, sec, f;
    optical_msf(lba, &m, &sec, &f);
    s[12] = (uint8_t)((m / 10) << 4 | m % 10);
    s[13] = (uint8_t)((sec / 10) << 4 | sec % 10);
    s[14] = (uint8_t)((f / 10) << 4 | f % 10);
    s[15] = 1;
    fill_block(s + 16, lba);
}

/* data.bin: 40 Mode 1 sectors (track 1), then 20 audio frames of which
 * the first 5 are track 2's INDEX 00; audio.bin: 30 frames (track 3,
 * after a PREGAP of 2 s). */
static void make_cue(void)
{
    uint8_t *b = calloc(60, RAW);
    assert_non_null(b);
    for (uint32_t i = 0; i < 40; i++)
        raw_mode1(b + (size_t)i * RAW, i);
    for (size_t i = 40 * RAW; i < 60 * RAW; i++)
        b[i] = (uint8_t)(i * 13);
    ts_store("data.bin", b, 60 * (size_t)RAW);
    for (size_t i = 0; i < 30 * RAW; i++)
        b[i] = (uint8_t)(i * 29 + 1);
    ts_store("audio.bin", b, 30 * (size_t)RAW);
    free(b);
    const char *cue = "REM made by test_scsi_mmc\r\n"
                      "FILE \"data.bin\" BINARY\r\n"
                      "  TRACK 01 MODE1/2352\r\n"
                      "    INDEX 01 00:00:00\r\n"
                      "  TRACK 02 AUDIO\r\n"
                      "    FLAGS DCP\r\n"
                      "    INDEX 00 00:00:40\r\n"
                      "    INDEX 01 00:00:45\r\n"
                      "FILE audio.bin BINARY\r\n"
                      "  TRACK 03 AUDIO\r\n"
                      "    PREGAP 00:02:00\r\n"
                      "    INDEX 01 00:00:00\r\n";
    ts_store("disc.cue", cue, strlen(cue));
}

static void test_cue_disc(void **state)
{
    (void)state;
    make_cue();
    struct blk_node *bs;
    struct scuse_err err = { 0 };
    /* Probed as cue; read-only; 40 + 20 + 150 + 30 sectors. */
    assert_int_equal(blk_open(ts_path("disc.cue"), NULL, 0, NULL, &bs, &err), 0);
    assert_string_equal(blk_format_name(bs), "cue");
    assert_int_equal(bs->size, 240ull * BLK);
    const struct optical_disc *d = optical_disc_of(bs);
    assert_non_null(d);
    assert_int_equal(d->n_tracks, 3);
    assert_int_equal(d->track[1].pregap, 40);
    assert_int_equal(d->track[1].start, 45);
    assert_int_equal(d->track[1].ctl, 0x02);
    assert_int_equal(d->track[2].pregap, 60);
    assert_int_equal(d->track[2].start, 210);
    assert_int_equal(d->leadout, 240);
    blk_close(bs);

    struct scsi_lun *lun = cdrom_over("disc.cue", "cue", &bs, NULL);
    uint8_t b[512];
    uint8_t toc[10] = { 0x43, 0, 0, 0, 0, 0, 0, 0x01, 0xfc, 0 };
    struct ts_res r = TS_IN(lun, toc, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 4 + 4 * 8);
    assert_int_equal(b[3], 3);
    assert_int_equal(b[4 + 1], 0x14);
    assert_int_equal(b[12 + 1], 0x12);     /* audio, copy permitted */
    assert_int_equal(ts_get(b + 12 + 4, 4), 45);
    assert_int_equal(b[20 + 1], 0x10);
    assert_int_equal(ts_get(b + 20 + 4, 4), 210);
    assert_int_equal(b[28 + 2], 0xaa);
    assert_int_equal(ts_get(b + 28 + 4, 4), 240);
    /* Data reads as the BIN's user data; audio is refused to READ(10). */
    uint8_t blk[2 * BLK], want[BLK];
    uint8_t cdb[16];
    size_t n = ts_rw_cdb(cdb, 0x28, 38, 2);
    r = ts_run(lun, cdb, n, SCSI_DIR_FROM_DEV, blk, sizeof(blk));
    ts_good(&r);
    fill_block(want, 38);
    assert_memory_equal(blk, want, BLK);
    fill_block(want, 39);
    assert_memory_equal(blk + BLK, want, BLK);
    n = ts_rw_cdb(cdb, 0x28, 39, 2);
    r = ts_run(lun, cdb, n, SCSI_DIR_FROM_DEV, blk, sizeof(blk));
    struct ts_sense s = ts_check(&r, 0x5, 0x64, 0x00);
    assert_true(s.info_valid);
    assert_int_equal(s.info, 40);
    /* READ CD: whole sectors as stored; audio as stored; generated gap
     * as silence; the sector type is checked. */
    uint8_t *rb = malloc(3 * RAW);
    uint8_t rcd[12] = { 0xbe, 0, 0, 0, 0, 39, 0, 0, 2, 0xf8, 0, 0 };
    r = TS_IN(lun, rcd, rb, 3 * RAW);
    ts_good(&r);
    assert_int_equal(r.xfer, 2 * RAW);
    uint8_t sec[RAW];
    raw_mode1(sec, 39);
    assert_memory_equal(rb, sec, RAW);
    uint8_t *file = malloc(60 * RAW);
    FILE *f = fopen(ts_path("data.bin"), "rb");
    assert_int_equal(fread(file, RAW, 60, f), 60);
    fclose(f);
    assert_memory_equal(rb + RAW, file + 40 * RAW, RAW);
    rcd[5] = 100;                           /* inside track 3's PREGAP */
    rcd[8] = 1;
    rcd[1] = 0x04;                          /* CD-DA expected */
    r = TS_IN(lun, rcd, rb, RAW);
    ts_good(&r);
    memset(sec, 0, RAW);
    assert_memory_equal(rb, sec, RAW);
    rcd[1] = 0x08;                          /* Mode 1 expected on audio */
    r = TS_IN(lun, rcd, rb, RAW);
    ts_check(&r, 0x5, 0x64, 0x00);
    /* User data only (10h) of track 1; sub-channel refused. */
    uint8_t rcd_user[12] = { 0xbe, 0x08, 0, 0, 0, 7, 0, 0, 1, 0x10, 0, 0 };
    r = TS_IN(lun, rcd_user, rb, RAW);
    ts_good(&r);
    assert_int_equal(r.xfer, BLK);
    fill_block(want, 7);
    assert_memory_equal(rb, want, BLK);
    rcd_user[10] = 0x01;
    r = TS_IN(lun, rcd_user, rb, RAW);
    TS_INVALID_CDB(r, 10, 2);
    rcd_user[10] = 0;
    rcd_user[9] = 0x58;
    r = TS_IN(lun, rcd_user, rb, RAW);
    TS_INVALID_CDB(r, 9, -1);
    free(rb);
    free(file);
    /* Raw TOC: A0 first track 1, A1 last 3, lead-out 240 + 150. */
    uint8_t raw[10] = { 0x43, 0, 0x02, 0, 0, 0, 0, 0x01, 0xfc, 0 };
    r = TS_IN(lun, raw, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(r.xfer, 4 + 6 * 11);
    assert_int_equal(b[15 + 8], 3);
    assert_memory_equal(b + 26 + 8, ((uint8_t[]){ 0, 5, 15 }), 3);
    scsi_lun_destroy(lun);
    blk_close(bs);
}

/* 99 audio tracks of one frame each (the most a CUE has): the whole TOC
 * in every format fits (format 2: 4 + 11 x 102 bytes; it once overran the
 * buffer sized for format 0). */
static void test_toc_99_tracks(void **state)
{
    (void)state;
    uint8_t *b = calloc(99, RAW);
    assert_non_null(b);
    ts_store("a99.bin", b, 99 * (size_t)RAW);
    free(b);
    char cue[99 * 48 + 64];
    size_t o = (size_t)snprintf(cue, sizeof(cue), "FILE \"a99.bin\" BINARY\n");
    for (int t = 1; t <= 99; t++)
        o += (size_t)snprintf(cue + o, sizeof(cue) - o,
                              "  TRACK %02d AUDIO\n    INDEX 01 00:%02d:%02d\n", t, (t - 1) / 75,
                              (t - 1) % 75);
    ts_store("a99.cue", cue, o);
    struct blk_node *bs;
    struct scsi_lun *lun = cdrom_over("a99.cue", "cue", &bs, NULL);
    static uint8_t out[4096];
    uint8_t raw[10] = { 0x43, 0, 0x02, 0, 0, 0, 0, 0x10, 0x00, 0 };
    struct ts_res r = TS_IN(lun, raw, out, sizeof(out));
    ts_good(&r);
    assert_int_equal(r.xfer, 4 + 11 * 102);
    const uint8_t *last = out + 4 + 11 * 101;      /* track 99: at frame 98 (+150) */
    assert_int_equal(last[3], 99);
    assert_memory_equal(last + 8, ((uint8_t[]){ 0, 3, 23 }), 3);
    uint8_t toc[10] = { 0x43, 0, 0, 0, 0, 0, 0, 0x10, 0x00, 0 };
    r = TS_IN(lun, toc, out, sizeof(out));
    ts_good(&r);
    assert_int_equal(r.xfer, 4 + 8 * 100);
    assert_int_equal(out[4 + 8 * 98 + 2], 99);
    assert_int_equal(out[4 + 8 * 99 + 2], 0xaa);
    scsi_lun_destroy(lun);
    blk_close(bs);
}

static void test_read_cd_iso(void **state)
{
    (void)state;
    make_iso("r.iso", 20);
    struct blk_node *bs;
    struct scsi_lun *lun = cdrom_over("r.iso", "raw", &bs, NULL);
    uint8_t *rb = malloc(2 * RAW);
    uint8_t rcd[12] = { 0xbe, 0, 0, 0, 0, 16, 0, 0, 2, 0xf8, 0, 0 };
    struct ts_res r = TS_IN(lun, rcd, rb, 2 * RAW);
    ts_good(&r);
    assert_int_equal(r.xfer, 2 * RAW);
    for (int k = 0; k < 2; k++) {
        uint8_t *s = rb + k * RAW, want[BLK];
        /* Sync, BCD header 00:02:16+k, mode 1, data, EDC over 0..80Fh,
         * 8 zero bytes. */
        assert_int_equal(s[0], 0);
        assert_int_equal(s[1], 0xff);
        assert_int_equal(s[11], 0);
        assert_int_equal(s[12], 0x00);
        assert_int_equal(s[13], 0x02);
        assert_int_equal(s[14], 0x16 + k);
        assert_int_equal(s[15], 1);
        fill_block(want, 16 + (uint32_t)k);
        assert_memory_equal(s + 16, want, BLK);
        uint32_t edc = optical_edc(s, 0x810);
        assert_int_equal(s[0x810] | s[0x811] << 8 | s[0x812] << 16 | (uint32_t)s[0x813] << 24,
                         edc);
        /* The CRC over data and its EDC leaves no remainder. */
        assert_int_equal(optical_edc(s, 0x814), 0);
        for (int i = 0x814; i < 0x81c; i++)
            assert_int_equal(s[i], 0);
    }
    /* Past the end: LBA OUT OF RANGE; too short a buffer: the residual. */
    rcd[5] = 19;
    r = TS_IN(lun, rcd, rb, 2 * RAW);
    ts_check(&r, 0x5, 0x21, 0x00);
    rcd[5] = 0;
    r = TS_IN(lun, rcd, rb, RAW + 100);
    ts_good(&r);
    assert_int_equal(r.xfer, RAW + 100);
    assert_int_equal(r.resid, RAW - 100);   /* what did not fit */
    assert_true(r.overflow);
    free(rb);
    scsi_lun_destroy(lun);
    blk_close(bs);
}

/* RSOC lists exactly the table of the device type, minus the policy. */
static void test_rsoc_policy(void **state)
{
    (void)state;
    make_iso("p.iso", 16);
    struct blk_node *bs;
    struct scsi_lun *lun = cdrom_over("p.iso", "raw", &bs, "deny=READ_TOC_PMA_ATIP:GET_PERFORMANCE");
    uint8_t b[1024];
    uint8_t rsoc[12] = { 0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x04, 0, 0, 0 };
    struct ts_res r = TS_IN(lun, rsoc, b, sizeof(b));
    ts_good(&r);
    size_t len = ts_get(b, 4);
    bool seen[256] = { false };
    for (size_t off = 4; off < 4 + len; off += 8)
        seen[b[off]] = true;
    static const uint8_t served[] = { 0x00, 0x03, 0x12, 0x1a, 0x1b, 0x1e, 0x25, 0x28, 0x46,
                                      0x4a, 0x51, 0x52, 0x5a, 0xa0, 0xa3, 0xa8, 0xbb, 0xbd,
                                      0xbe };
    for (unsigned i = 0; i < sizeof(served); i++)
        if (!seen[served[i]])
            fail_msg("RSOC lacks %02x", served[i]);
    assert_false(seen[0x43]);
    assert_false(seen[0xac]);
    assert_false(seen[0x2a]);               /* no write of any kind */
    assert_false(seen[0x42]);
    assert_int_equal(len, sizeof(served) * 8);
    uint8_t toc[10] = { 0x43, 0, 0, 0, 0, 0, 0, 0, 0xfc, 0 };
    r = TS_IN(lun, toc, b, sizeof(b));
    ts_check(&r, 0x5, 0x20, 0x00);
    /* One command with its usage data: READ CD. */
    uint8_t one[12] = { 0xa3, 0x0c, 0x01, 0xbe, 0, 0, 0, 0, 0, 64, 0, 0 };
    r = TS_IN(lun, one, b, sizeof(b));
    ts_good(&r);
    assert_int_equal(b[1] & 0x07, 0x03);
    assert_int_equal(ts_get(b + 2, 2), 12);
    assert_int_equal(b[4], 0xbe);
    assert_int_equal(b[4 + 9], 0xff);
    /* A disk LUN has no READ TOC at all. */
    scsi_lun_destroy(lun);
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    struct scuse_err err = { 0 };
    assert_int_equal(scsi_lun_create(&cfg, bs, 0, &lun, &err), 0);
    toc[9] = 0;
    r = TS_IN(lun, toc, b, sizeof(b));
    ts_check(&r, 0x5, 0x20, 0x00);
    scsi_lun_destroy(lun);
    blk_close(bs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TS_TEST(test_toc_iso),
        TS_TEST(test_configuration_events),
        TS_TEST(test_dvd_profile),
        TS_TEST(test_cue_disc),
        TS_TEST(test_toc_99_tracks),
        TS_TEST(test_read_cd_iso),
        TS_TEST(test_rsoc_policy),
    };
    return cmocka_run_group_tests(tests, setup, ts_teardown);
}
