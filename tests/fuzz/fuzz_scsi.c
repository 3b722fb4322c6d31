/* libFuzzer target: random CDBs and parameter lists against a disk LUN.
 *
 * At start-up two small images are made in a scratch directory with the
 * library's own create and write paths: lun.raw (raw) and top.qcow2 (4 KiB
 * clusters, some data and zero clusters, over base.raw). Their bytes are
 * kept; every input restores them, opens one, makes a LUN with settings
 * from the input and runs its commands through scsi_cmd_prepare and
 * scsi_cmd_execute, as a transport and the dispatcher would.
 *
 * Input:
 *   byte 0  settings: bit 0 qcow2 (else raw), 1 4096-byte blocks (else
 *           512), 2 read-only, 3 write cache off, 4 discard off, 5 a
 *           command policy (byte 1), 6 a power-on unit attention pending,
 *           7 physical block exponent 3
 *   byte 1  policy: bit 7 allow (else deny) list of one table entry,
 *           bits 0-6 its index (modulo the table); without a policy
 *           (byte 0 bit 5 clear), bit 0: a cdrom LUN (MMC) over the image
 *           instead of a disk
 *   then records, at most MAX_CMDS:
 *           hdr: bits 0-3 CDB length - 1, bits 4-5 direction (0 none,
 *                1 data-in, 2 or 3 data-out), bit 6 the buffer cut into
 *                three iovecs, bit 7 raise CAPACITY DATA HAS CHANGED first
 *           the CDB bytes
 *           2 bytes, big-endian: the buffer length
 *           data-out only: the buffer's bytes (zeros where input ends)
 * tests/fuzz/seeds_scsi.py writes seeds in this format.
 *
 * Besides ASan/UBSan findings, the target aborts on broken contracts:
 *   - prepare deferring a command it also answered, or with a range
 *     outside the capacity; an access value out of its enum;
 *   - a status outside SAM's set; CHECK CONDITION without well-formed
 *     sense (fixed: 18 bytes; descriptor: length = 8 + additional length,
 *     whole descriptors), sense longer than SCSI_SENSE_MAX, or sense with
 *     another status;
 *   - xfer above the buffer length, a residual that does not add up;
 *   - any byte written outside the buffer (guard bytes around each iovec
 *     and after the sense buffer), into a data-out buffer, or into a
 *     data-in buffer past what xfer reports;
 *   - the capacity (LUN blocks, image size) changing; a file descriptor
 *     left open. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk/blk.h"
#include "blk/driver.h"
#include "scsi/scsi.h"
#include "scsi/scsi_int.h"

#define IMG_SIZE (256u << 10)
#define MAX_CMDS 48
#define MAX_DATA 65535u
#define GUARD 64
#define GUARD_BYTE 0xe7
#define FILL_BYTE 0xa5

static char dir[64];
static char raw_path[96], top_path[96], base_path[96];
static uint8_t *raw_img, *top_img;
static size_t raw_len, top_len;

/* The buffer: three iovec areas, each with guards on both sides. */
static uint8_t area[3 * (GUARD + MAX_DATA) + GUARD];
static uint8_t shadow_data[MAX_DATA];
static uint8_t sense[SCSI_SENSE_MAX + GUARD];
static uint8_t guard[GUARD];

static void die(const char *what, uint64_t a, uint64_t b)
{
    fprintf(stdout, "fuzz_scsi: %s (%llu, %llu)\n", what, (unsigned long long)a,
            (unsigned long long)b);
    fflush(stdout);
    abort();
}

/* No descriptor may stay open on a file of the scratch directory (the
 * fuzzer's own, such as the symbolizer's pipes, do not count). */
static void check_no_image_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char l[300], t[256];
        snprintf(l, sizeof(l), "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(l, t, sizeof(t) - 1);
        if (k <= 0)
            continue;
        t[k] = 0;
        if (strncmp(t, dir, strlen(dir)) == 0)
            die("file descriptor left open on an image", (uint64_t)atoi(e->d_name), 0);
    }
    closedir(d);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        die("cannot read an image made at start-up", (uint64_t)errno, 0);
    uint8_t *b = malloc((size_t)st.st_size + 1);
    if (!b || pread(fd, b, (size_t)st.st_size, 0) != st.st_size)
        die("cannot read an image made at start-up", (uint64_t)errno, 1);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

static void restore(const char *path, const uint8_t *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)len) < 0 || pwrite(fd, b, len, 0) != (ssize_t)len)
        die("cannot restore an image", (uint64_t)errno, 0);
    close(fd);
}

static void make(const char *fmt, const char *path, const char *backing)
{
    struct blk_create_opts o = { .size = IMG_SIZE };
    if (backing) {
        o.backing_file = backing;
        o.backing_fmt = "raw";
        o.o.kv[o.o.n].key = "cluster_size";
        o.o.kv[o.o.n++].val = "4096";
    }
    struct scuse_err err = { 0 };
    if (blk_driver_find(fmt)->create(path, &o, &err) < 0)
        die(err.msg, 0, 0);
}

static void fill(const char *path, const char *fmt, int salt)
{
    struct blk_node *bs;
    struct scuse_err err = { 0 };
    if (blk_open(path, fmt, BLK_OPEN_RW | BLK_OPEN_SHARE, NULL, &bs, &err) < 0)
        die(err.msg, 0, 0);
    uint8_t b[12288];
    for (size_t i = 0; i < sizeof(b); i++)
        b[i] = (uint8_t)(i * 7 + salt + (i >> 9));
    /* Data, zeros and a hole, in pieces that do not line up with clusters. */
    if (blk_pwrite(bs, 0, b, 8192, 0, NULL) < 0 || blk_pwrite(bs, 20480 + 512, b, 12288, 0, NULL) < 0 ||
        blk_write_zeroes(bs, 65536, 16384, 0, NULL) < 0 || blk_pwrite(bs, IMG_SIZE - 4096, b, 4096, 0, NULL) < 0 ||
        blk_discard(bs, 0, 4096, NULL) < 0 || blk_flush(bs, NULL) < 0)
        die("cannot fill an image at start-up", 0, 0);
    blk_close(bs);
}

static void init(void)
{
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(dir, sizeof(dir) - 7, "%s/scuse-fuzz-scsi-", tmp ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= sizeof(dir) - 7)
        die("TMPDIR is too long", (uint64_t)n, 0);
    memset(dir + n, 'X', 6);       /* the part mkdtemp replaces */
    dir[n + 6] = 0;
    if (!mkdtemp(dir))
        die("mkdtemp failed", (uint64_t)errno, 0);
    snprintf(raw_path, sizeof(raw_path), "%s/lun.raw", dir);
    snprintf(base_path, sizeof(base_path), "%s/base.raw", dir);
    snprintf(top_path, sizeof(top_path), "%s/top.qcow2", dir);
    make("raw", raw_path, NULL);
    make("raw", base_path, NULL);
    make("qcow2", top_path, "base.raw");
    fill(raw_path, "raw", 1);
    fill(base_path, "raw", 2);
    fill(top_path, "qcow2", 3);
    raw_img = slurp(raw_path, &raw_len);
    top_img = slurp(top_path, &top_len);
}

/* The scratch directory goes when the fuzzer exits. */
static void cleanup(void)
{
    if (!dir[0])
        return;
    unlink(raw_path);
    unlink(top_path);
    unlink(base_path);
    rmdir(dir);
}

static bool status_known(uint8_t s)
{
    return s == SCSI_STATUS_GOOD || s == SCSI_STATUS_CHECK_CONDITION ||
           s == SCSI_STATUS_CONDITION_MET || s == SCSI_STATUS_BUSY ||
           s == SCSI_STATUS_RESERVATION_CONFLICT || s == SCSI_STATUS_TASK_SET_FULL ||
           s == SCSI_STATUS_TASK_ABORTED;
}

static void check_sense(const struct scsi_cmd *c)
{
    if (c->status != SCSI_STATUS_CHECK_CONDITION) {
        if (c->sense_len)
            die("sense data with a status other than CHECK CONDITION", c->status, c->sense_len);
        return;
    }
    uint32_t n = c->sense_len;
    if (n < 8 || n > SCSI_SENSE_MAX)
        die("CHECK CONDITION with a bad sense length", n, c->cdb[0]);
    uint8_t code = sense[0] & 0x7f;
    if (code == 0x70 || code == 0x71) {
        if (n != 18 || sense[7] != 10)
            die("fixed sense of a bad length", n, sense[7]);
        if ((sense[2] & 0x0f) == 0)
            die("fixed sense with NO SENSE in a CHECK CONDITION", c->cdb[0], 0);
        return;
    }
    if (code != 0x72 && code != 0x73)
        die("sense with an unknown response code", code, c->cdb[0]);
    if ((uint32_t)sense[7] + 8 != n)
        die("descriptor sense: additional length does not match", sense[7], n);
    if ((sense[1] & 0x0f) == 0)
        die("descriptor sense with NO SENSE in a CHECK CONDITION", c->cdb[0], 0);
    for (uint32_t off = 8; off < n;) {
        if (off + 2 > n || off + 2u + sense[off + 1] > n)
            die("descriptor sense: a descriptor runs past the end", off, n);
        off += 2u + sense[off + 1];
    }
}

static void check_prepare(const struct scsi_lun *lun, const struct scsi_cmd *c)
{
    uint64_t blocks = scsi_lun_blocks(lun);
    switch (c->access) {
    case SCSI_ACCESS_DONE:
        return;
    case SCSI_ACCESS_READ:
    case SCSI_ACCESS_WRITE:
    case SCSI_ACCESS_ATOMIC:
    case SCSI_ACCESS_FLUSH:
        if (c->nblocks == 0 || c->lba >= blocks || c->nblocks > blocks - c->lba)
            die("prepare announced a range outside the capacity", c->lba, c->nblocks);
        break;
    case SCSI_ACCESS_NONE:
    case SCSI_ACCESS_BARRIER:
        break;
    default:
        die("prepare left an access outside the enum", (uint64_t)c->access, 0);
    }
    if (c->status != SCSI_STATUS_GOOD || c->sense_len || c->xfer)
        die("prepare deferred a command it also answered", c->cdb[0], c->status);
}

/* One command: the buffer set up as hdr says, prepare, execute, checks. */
static void run_one(struct scsi_lun *lun, uint8_t hdr, const uint8_t *cdb, uint32_t cdb_len,
                    uint32_t len, const uint8_t *out, size_t out_len)
{
    int d = (hdr >> 4) & 3;
    enum scsi_dir dirn = d == 0 ? SCSI_DIR_NONE : d == 1 ? SCSI_DIR_FROM_DEV : SCSI_DIR_TO_DEV;
    bool split = hdr & 0x40;
    memset(sense, GUARD_BYTE, sizeof(sense));
    /* Content: data-out from the input, otherwise a known fill. */
    if (dirn == SCSI_DIR_TO_DEV) {
        size_t n = out_len < len ? out_len : len;
        memcpy(shadow_data, out, n);
        memset(shadow_data + n, 0, len - n);
    } else {
        memset(shadow_data, FILL_BYTE, len);
    }
    uint32_t cut[4] = { 0, len, len, len };
    if (split && len >= 3) {
        cut[1] = len / 3 + (cdb[0] & 7);
        cut[2] = len - len / 5;
        if (cut[1] > cut[2])
            cut[1] = cut[2];
    }
    struct iovec iov[3];
    int cnt = split ? 3 : 1;
    for (int i = 0; i < cnt; i++) {
        uint8_t *p = area + GUARD + (size_t)i * (GUARD + MAX_DATA);
        uint32_t a = cut[i], b = split ? cut[i + 1] : len;
        memset(p - GUARD, GUARD_BYTE, GUARD);
        memcpy(p, shadow_data + a, b - a);
        memset(p + (b - a), GUARD_BYTE, GUARD);
        iov[i].iov_base = p;
        iov[i].iov_len = b - a;
    }
    struct scsi_cmd c;
    memset(&c, 0, sizeof(c));
    c.cdb = cdb;
    c.cdb_len = cdb_len;
    c.data = iov_view_make(iov, cnt, len);
    c.dir = dirn;
    c.sense = sense;
    if (hdr & 0x80)
        scsi_lun_raise_ua(lun, SCSI_UA_CAPACITY_CHANGED);

    scsi_cmd_prepare(lun, &c);
    check_prepare(lun, &c);
    if (c.access != SCSI_ACCESS_DONE)
        scsi_cmd_execute(lun, &c);

    if (!status_known(c.status))
        die("status outside SAM's set", c.status, c.cdb[0]);
    check_sense(&c);
    if (c.xfer > len)
        die("xfer above the buffer length", c.xfer, len);
    if (c.resid > len && !c.overflow)
        die("underflow residual above the buffer length", c.resid, len);
    if (c.status == SCSI_STATUS_GOOD && !c.overflow && dirn != SCSI_DIR_NONE &&
        c.xfer + c.resid > len)
        die("xfer and residual exceed the buffer", c.xfer + c.resid, len);
    if (memcmp(sense + SCSI_SENSE_MAX, guard, GUARD) != 0)
        die("write past the sense buffer", c.cdb[0], 0);
    /* Guards, and the bytes the command had no business writing. */
    for (int i = 0; i < cnt; i++) {
        uint8_t *p = area + GUARD + (size_t)i * (GUARD + MAX_DATA);
        size_t n = iov[i].iov_len;
        if (memcmp(p - GUARD, guard, GUARD) != 0)
            die("write before an iovec", (uint64_t)i, c.cdb[0]);
        if (memcmp(p + n, guard, GUARD) != 0)
            die("write past an iovec", (uint64_t)i, c.cdb[0]);
        uint32_t a = split ? cut[i] : 0;
        if (memcmp(p, shadow_data + a, n) == 0)
            continue;
        if (dirn != SCSI_DIR_FROM_DEV)
            die("write into a buffer that is not data-in", c.cdb[0], a);
        /* Data-in: only the first xfer bytes may have changed. */
        if (a + n > c.xfer) {
            size_t from = c.xfer > a ? c.xfer - a : 0;
            if (memcmp(p + from, shadow_data + a + from, n - from) != 0)
                die("write into data-in past xfer", c.cdb[0], c.xfer);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        memset(guard, GUARD_BYTE, sizeof(guard));
        init();
        atexit(cleanup);
    }
    if (size < 2)
        return 0;
    uint8_t set = data[0], pol = data[1];
    bool qcow2 = set & 0x01;
    restore(raw_path, raw_img, raw_len);
    restore(top_path, top_img, top_len);

    struct blk_node *bs;
    struct scuse_err err = { 0 };
    unsigned flags = (set & 0x04 ? 0 : BLK_OPEN_RW) | BLK_OPEN_SHARE | BLK_OPEN_NO_FLUSH;
    if (blk_open(qcow2 ? top_path : raw_path, qcow2 ? "qcow2" : "raw", flags, NULL, &bs, &err) < 0)
        die(err.msg, 0, 0);
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.block_size = set & 0x02 ? 4096 : 512;
    cfg.write_cache = !(set & 0x08);
    cfg.discard = !(set & 0x10);
    cfg.phys_exp = set & 0x80 ? 3 : 0;
    if (set & 0x20) {
        const struct scsi_op *op = &scsi_ops[(pol & 0x7f) % scsi_n_ops];
        cfg.policy_allow = pol & 0x80;
        cfg.policy[0] = (uint32_t)op->opcode << 16 | (op->sa == SCSI_NO_SA ? 0xffff : op->sa);
        cfg.n_policy = 1;
    } else if (pol & 0x01) {
        cfg.device = SCSI_DEVICE_CDROM;
    }
    struct scsi_lun *lun;
    if (scsi_lun_create(&cfg, bs, 0, &lun, &err) < 0)
        die(err.msg, 0, 0);
    if (set & 0x40)
        scsi_lun_raise_ua(lun, SCSI_UA_POWER_ON);
    uint64_t blocks = scsi_lun_blocks(lun), bytes = bs->size;

    size_t off = 2;
    for (int n = 0; n < MAX_CMDS && off < size; n++) {
        uint8_t hdr = data[off++];
        uint32_t cdb_len = (hdr & 0x0f) + 1u;
        uint8_t cdb[16] = { 0 };
        size_t take = size - off < cdb_len ? size - off : cdb_len;
        memcpy(cdb, data + off, take);
        off += take;
        uint32_t len = 0;
        if (off + 2 <= size)
            len = (uint32_t)data[off] << 8 | data[off + 1];
        off = off + 2 <= size ? off + 2 : size;
        const uint8_t *out = data + off;
        size_t out_len = 0;
        if (((hdr >> 4) & 3) >= 2) {
            out_len = size - off < len ? size - off : len;
            off += out_len;
        }
        run_one(lun, hdr, cdb, cdb_len, len, out, out_len);
        if (scsi_lun_blocks(lun) != blocks || bs->size != bytes)
            die("the capacity changed", blocks, scsi_lun_blocks(lun));
    }
    scsi_lun_destroy(lun);
    blk_close(bs);
    check_no_image_fd();
    return 0;
}
