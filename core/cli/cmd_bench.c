/* scuse bench: drive a LUN over an image the way a transport does:
 * READ(16)/WRITE(16) CDBs in preallocated command slots, QD of them in
 * flight through the dispatcher, each slot resubmitted from its
 * completion with the next request, and report IOPS, MB/s and CPU
 * seconds per GiB moved (the whole process: submitter and workers). */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"
#include "scsi/dispatch.h"
#include "scsi/scsi.h"

#define BENCH_MAX_QD 4096
#define BENCH_MAX_BS (64u << 20)
#define UA_RETRIES 8

enum rw { RW_READ, RW_WRITE, RW_RANDREAD, RW_RANDWRITE, RW_MIXED };
static const char *const rw_names[] = { "read", "write", "randread", "randwrite", "rw" };

static void bench_usage(FILE *f)
{
    fprintf(f, "usage: scuse bench [-f FMT] [--rw PATTERN] [--bs N] [--qd N] [--time S | --count N]\n"
               "                   [--stride N] [--block-size 512|4096] [--workers N] [--pattern BYTE]\n"
               "                   [--output=human|json] [-U] IMG\n"
               "  --rw PATTERN      read, write (sequential), randread, randwrite, or rw\n"
               "                    (sequential, each request a read or a write at random)\n"
               "  --bs N            bytes per request (default 4k)\n"
               "  --qd N            commands in flight (default 32)\n"
               "  --time S          run for S seconds (default 5)\n"
               "  --count N         run N requests instead\n"
               "  --stride N        sequential patterns: step between requests (default: --bs);\n"
               "                    offsets wrap modulo the image size, as qemu-img bench -S\n"
               "  --block-size N    the LUN's logical block size (default 512)\n"
               "  --workers N       dispatcher worker threads (default: chosen by the dispatcher)\n"
               "  --pattern BYTE    byte written by write requests (default 0, as qemu-img bench)\n"
               "  -U                read without taking image locks (read patterns only)\n");
}

struct bench;

struct slot {
    struct scsi_cmd cmd;
    uint8_t cdb[16];
    uint8_t sense[SCSI_SENSE_MAX];
    struct iovec iov;
    uint8_t *buf;
    unsigned ua_retries;
    struct bench *b;
};

struct bench {
    struct scsi_disp *disp;
    struct scsi_lun *lun;
    enum rw rw;
    uint32_t bs, lbs;
    uint64_t stride, size, count;
    atomic_uint_fast64_t issued;   /* requests handed out (the next request's index) */
    atomic_uint_fast64_t completed, reads, writes;
    atomic_uint live;              /* slots still circulating */
    atomic_bool stop;
    atomic_int failed;
    char failure[256];
    pthread_mutex_t lock;
    pthread_cond_t all_done;
    bool finished;
};

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Build request i into slot s: READ(16) or WRITE(16). */
static void fill(struct bench *b, struct slot *s, uint64_t i)
{
    uint64_t off;
    bool write;
    switch (b->rw) {
    case RW_RANDREAD:
    case RW_RANDWRITE:
        off = mix64(i) % (b->size / b->bs) * b->bs;
        write = b->rw == RW_RANDWRITE;
        break;
    default:
        /* i x stride modulo the size, as qemu-img bench -S; a request
         * that would cross the end starts at 0 instead (qemu-img fails it). */
        off = (uint64_t)((unsigned __int128)i * b->stride % b->size);
        if (off > b->size - b->bs)
            off = 0;
        write = b->rw == RW_WRITE || (b->rw == RW_MIXED && (mix64(i) & 1));
        break;
    }
    memset(s->cdb, 0, sizeof(s->cdb));
    s->cdb[0] = write ? 0x8a : 0x88;
    put_be(s->cdb + 2, off / b->lbs, 8);
    put_be(s->cdb + 10, b->bs / b->lbs, 4);
    s->cmd.cdb = s->cdb;
    s->cmd.cdb_len = 16;
    s->cmd.data = iov_view_make(&s->iov, 1, b->bs);
    s->cmd.dir = write ? SCSI_DIR_TO_DEV : SCSI_DIR_FROM_DEV;
    s->cmd.tag = i;
    s->ua_retries = 0;
}

static bool is_unit_attention(const struct scsi_cmd *c)
{
    if (c->status != SCSI_STATUS_CHECK_CONDITION || c->sense_len < 3)
        return false;
    uint8_t code = c->sense[0] & 0x7f;
    uint8_t key = code >= 0x72 ? c->sense[1] & 0xf : c->sense[2] & 0xf;
    return key == 0x6;
}

static void fail_once(struct bench *b, const struct scsi_cmd *c)
{
    if (atomic_exchange(&b->failed, 1))
        return;
    uint8_t code = c->sense_len ? c->sense[0] & 0x7f : 0;
    unsigned key = 0, asc = 0, ascq = 0;
    if (code >= 0x72 && c->sense_len >= 4)
        key = c->sense[1] & 0xf, asc = c->sense[2], ascq = c->sense[3];
    else if (c->sense_len >= 14)
        key = c->sense[2] & 0xf, asc = c->sense[12], ascq = c->sense[13];
    snprintf(b->failure, sizeof(b->failure),
             "%s at LBA %" PRIu64 " failed: status 0x%02x, sense key 0x%x, ASC/ASCQ %02xh/%02xh",
             c->cdb[0] == 0x8a ? "WRITE(16)" : "READ(16)", c->lba, c->status, key, asc, ascq);
}

static void retire(struct bench *b)
{
    if (atomic_fetch_sub(&b->live, 1) != 1)
        return;
    pthread_mutex_lock(&b->lock);
    b->finished = true;
    pthread_cond_signal(&b->all_done);
    pthread_mutex_unlock(&b->lock);
}

/* Completion, on a dispatcher worker: count, then reuse the slot. */
static void on_done(struct scsi_cmd *cmd)
{
    struct slot *s = cmd->priv;
    struct bench *b = s->b;
    if (is_unit_attention(cmd) && ++s->ua_retries <= UA_RETRIES) {
        scsi_submit(b->disp, b->lun, cmd);   /* as an initiator does: retry */
        return;
    }
    if (cmd->status != SCSI_STATUS_GOOD) {
        fail_once(b, cmd);
        atomic_store(&b->stop, true);
    } else {
        atomic_fetch_add_explicit(&b->completed, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(cmd->dir == SCSI_DIR_TO_DEV ? &b->writes : &b->reads, 1,
                                  memory_order_relaxed);
    }
    if (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        uint64_t i = atomic_fetch_add_explicit(&b->issued, 1, memory_order_relaxed);
        if (i < b->count) {
            fill(b, s, i);
            scsi_submit(b->disp, b->lun, cmd);
            return;
        }
    }
    retire(b);
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_sec(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* TEST UNIT READY until GOOD, so the LUN's power-on unit attention is
 * consumed before timing starts. */
static int clear_unit_attention(struct bench *b, struct slot *s)
{
    for (int i = 0; i < UA_RETRIES; i++) {
        memset(s->cdb, 0, sizeof(s->cdb));
        s->cmd.cdb = s->cdb;
        s->cmd.cdb_len = 6;
        s->cmd.data = iov_view_make(&s->iov, 1, 0);
        s->cmd.dir = SCSI_DIR_NONE;
        pthread_mutex_lock(&b->lock);
        b->finished = false;
        pthread_mutex_unlock(&b->lock);
        atomic_store(&b->live, 1);
        atomic_store(&b->stop, true); /* on_done retires the slot at once */
        s->ua_retries = UA_RETRIES;   /* no retry inside on_done */
        scsi_submit(b->disp, b->lun, &s->cmd);
        pthread_mutex_lock(&b->lock);
        while (!b->finished)
            pthread_cond_wait(&b->all_done, &b->lock);
        pthread_mutex_unlock(&b->lock);
        if (s->cmd.status == SCSI_STATUS_GOOD)
            break;
        if (!is_unit_attention(&s->cmd))
            return -EIO;
        atomic_store(&b->failed, 0);
    }
    atomic_store(&b->failed, 0);
    atomic_store(&b->completed, 0);
    atomic_store(&b->reads, 0);
    atomic_store(&b->writes, 0);
    atomic_store(&b->stop, false);
    return 0;
}

struct bench_opts {
    const char *fmt, *img;
    enum rw rw;
    uint64_t bs, qd, count, stride;
    double seconds;
    bool timed, json, share;
    uint32_t lbs;
    unsigned workers;
    int pattern;
};

static void print_result(const struct bench_opts *o, const struct bench *b, unsigned workers,
                         double secs, double cpu)
{
    uint64_t done = atomic_load(&b->completed);
    double bytes = (double)done * (double)o->bs;
    double iops = secs > 0 ? (double)done / secs : 0;
    double mibs = secs > 0 ? bytes / secs / 1048576.0 : 0;
    double gib = bytes / 1073741824.0;
    double cpu_gib = gib > 0 ? cpu / gib : 0;
    if (o->json) {
        printf("{\n    \"image\": \"");
        for (const char *p = o->img; *p; p++) {
            if (*p == '"' || *p == '\\')
                putchar('\\');
            if ((unsigned char)*p >= 0x20)
                putchar(*p);
        }
        printf("\",\n    \"rw\": \"%s\",\n    \"bs\": %" PRIu64 ",\n    \"qd\": %" PRIu64
               ",\n    \"stride\": %" PRIu64 ",\n    \"block-size\": %u,\n    \"workers\": %u,\n"
               "    \"requests\": %" PRIu64 ",\n    \"reads\": %" PRIu64 ",\n    \"writes\": %" PRIu64
               ",\n    \"seconds\": %.9f,\n    \"iops\": %.1f,\n    \"mib-per-second\": %.2f,\n"
               "    \"cpu-seconds\": %.4f,\n    \"cpu-seconds-per-gib\": %.4f\n}\n",
               rw_names[o->rw], o->bs, o->qd, o->stride, o->lbs, workers, done,
               (uint64_t)atomic_load(&b->reads), (uint64_t)atomic_load(&b->writes), secs, iops,
               mibs, cpu, cpu_gib);
        return;
    }
    printf("%s: %s, %" PRIu64 "-byte requests, queue depth %" PRIu64 ", %u workers", o->img,
           rw_names[o->rw], o->bs, o->qd, workers);
    if (o->rw != RW_RANDREAD && o->rw != RW_RANDWRITE && o->stride != o->bs)
        printf(", stride %" PRIu64, o->stride);
    printf("\n%" PRIu64 " requests in %.3f s: %.0f IOPS, %.1f MiB/s, %.3f CPU s (%.3f CPU s/GiB)\n",
           done, secs, iops, mibs, cpu, cpu_gib);
}

static int parse_args(int argc, char **argv, struct bench_opts *o)
{
    static const struct option longopts[] = {
        { "format", required_argument, NULL, 'f' },
        { "rw", required_argument, NULL, 'r' },
        { "bs", required_argument, NULL, 'b' },
        { "qd", required_argument, NULL, 'q' },
        { "time", required_argument, NULL, 't' },
        { "count", required_argument, NULL, 'c' },
        { "stride", required_argument, NULL, 's' },
        { "block-size", required_argument, NULL, 'B' },
        { "workers", required_argument, NULL, 'w' },
        { "pattern", required_argument, NULL, 'p' },
        { "output", required_argument, NULL, 'o' },
        { "force-share", no_argument, NULL, 'U' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    *o = (struct bench_opts){ .rw = RW_READ, .bs = 4096, .qd = 32, .seconds = 5, .lbs = 512 };
    bool have_time = false, have_count = false;
    int c;
    uint64_t v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:Uh", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': o->fmt = optarg; break;
        case 'r': {
            int i = 0;
            while (i < 5 && strcmp(optarg, rw_names[i]) != 0)
                i++;
            if (i == 5)
                return cli_fail(EXIT_USAGE, "bench", "unknown --rw '%s'", optarg);
            o->rw = (enum rw)i;
            break;
        }
        case 'b':
            if (cli_parse_size(optarg, &o->bs) < 0 || o->bs == 0 || o->bs > BENCH_MAX_BS)
                return cli_fail(EXIT_USAGE, "bench", "bad --bs '%s'", optarg);
            break;
        case 'q':
            if (cli_parse_size(optarg, &o->qd) < 0 || o->qd == 0 || o->qd > BENCH_MAX_QD)
                return cli_fail(EXIT_USAGE, "bench", "bad --qd '%s' (1..%d)", optarg, BENCH_MAX_QD);
            break;
        case 't': {
            char *end;
            o->seconds = strtod(optarg, &end);
            if (*end || !(o->seconds > 0) || o->seconds > 86400)
                return cli_fail(EXIT_USAGE, "bench", "bad --time '%s'", optarg);
            have_time = true;
            break;
        }
        case 'c':
            if (cli_parse_size(optarg, &o->count) < 0 || o->count == 0)
                return cli_fail(EXIT_USAGE, "bench", "bad --count '%s'", optarg);
            have_count = true;
            break;
        case 's':
            if (cli_parse_size(optarg, &o->stride) < 0 || o->stride == 0)
                return cli_fail(EXIT_USAGE, "bench", "bad --stride '%s'", optarg);
            break;
        case 'B':
            if (cli_parse_size(optarg, &v) < 0 || (v != 512 && v != 4096))
                return cli_fail(EXIT_USAGE, "bench", "--block-size must be 512 or 4096");
            o->lbs = (uint32_t)v;
            break;
        case 'w':
            if (cli_parse_size(optarg, &v) < 0 || v == 0 || v > DISP_MAX_WORKERS)
                return cli_fail(EXIT_USAGE, "bench", "bad --workers '%s' (1..%d)", optarg,
                                DISP_MAX_WORKERS);
            o->workers = (unsigned)v;
            break;
        case 'p': {
            char *end;
            long p = strtol(optarg, &end, 0);
            if (*end || p < 0 || p > 255)
                return cli_fail(EXIT_USAGE, "bench", "bad --pattern '%s'", optarg);
            o->pattern = (int)p;
            break;
        }
        case 'o': {
            int f = cli_output_format(optarg);
            if (f < 0)
                return cli_fail(EXIT_USAGE, "bench", "--output must be human or json");
            o->json = f == 1;
            break;
        }
        case 'U': o->share = true; break;
        case 'h': bench_usage(stdout); return -1;
        default: bench_usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1)
        return cli_fail(EXIT_USAGE, "bench", "expected exactly one image");
    o->img = argv[optind];
    if (have_time && have_count)
        return cli_fail(EXIT_USAGE, "bench", "--time and --count exclude each other");
    o->timed = !have_count;
    if (!o->stride)
        o->stride = o->bs;
    if (o->bs % o->lbs || o->stride % o->lbs)
        return cli_fail(EXIT_USAGE, "bench", "--bs and --stride must be multiples of the block "
                        "size %u", o->lbs);
    bool writes = o->rw == RW_WRITE || o->rw == RW_RANDWRITE || o->rw == RW_MIXED;
    if (writes && o->share)
        return cli_fail(EXIT_USAGE, "bench", "-U is for read patterns (a writer takes its locks)");
    return 0;
}

static int run(const struct bench_opts *o, struct bench *b, struct slot *slots, unsigned *workers)
{
    struct scuse_err err = { 0 };
    struct scsi_disp_config dc = { .workers = o->workers };
    if (scsi_disp_create(&dc, &b->disp, &err) < 0)
        return cli_fail(EXIT_IMAGE, "bench", "%s", err.msg);
    *workers = scsi_disp_workers(b->disp);
    if (scsi_disp_attach(b->disp, b->lun, &err) < 0)
        return cli_fail(EXIT_IMAGE, "bench", "%s", err.msg);
    if (clear_unit_attention(b, &slots[0]) < 0)
        return cli_fail(EXIT_IMAGE, "bench", "TEST UNIT READY failed: status 0x%02x",
                        slots[0].cmd.status);

    b->finished = false;
    atomic_store(&b->live, (unsigned)o->qd);
    double t0 = now_sec(), c0 = cpu_sec();
    for (uint64_t i = 0; i < o->qd; i++) {
        struct slot *s = &slots[i];
        uint64_t k = atomic_fetch_add(&b->issued, 1);
        if (k >= b->count) {
            retire(b);
            continue;
        }
        fill(b, s, k);
        scsi_submit(b->disp, b->lun, &s->cmd);
    }
    pthread_mutex_lock(&b->lock);
    if (o->timed) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        double end = (double)until.tv_sec + (double)until.tv_nsec / 1e9 + o->seconds;
        until.tv_sec = (time_t)end;
        until.tv_nsec = (long)((end - (double)until.tv_sec) * 1e9);
        while (!b->finished && pthread_cond_timedwait(&b->all_done, &b->lock, &until) == 0)
            ;
        atomic_store(&b->stop, true);
    }
    while (!b->finished)
        pthread_cond_wait(&b->all_done, &b->lock);
    pthread_mutex_unlock(&b->lock);
    double secs = now_sec() - t0, cpu = cpu_sec() - c0;
    if (atomic_load(&b->failed))
        return cli_fail(EXIT_IMAGE, "bench", "%s", b->failure);
    print_result(o, b, *workers, secs, cpu);
    return EXIT_OK;
}

int cmd_bench(int argc, char **argv)
{
    struct bench_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    bool writes = o.rw == RW_WRITE || o.rw == RW_RANDWRITE || o.rw == RW_MIXED;
    struct blk_node *bs;
    unsigned flags = (writes ? BLK_OPEN_RW : 0) | (o.share ? BLK_OPEN_SHARE : 0);
    if (cli_open("bench", o.img, o.fmt, flags, NULL, &bs) < 0)
        return EXIT_IMAGE;

    struct bench *b = calloc(1, sizeof(*b));
    struct slot *slots = calloc(o.qd, sizeof(*slots));
    struct scuse_err err = { 0 };
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.block_size = o.lbs;
    rc = EXIT_IMAGE;
    if (!b || !slots) {
        cli_fail(EXIT_IMAGE, "bench", "out of memory");
        goto out;
    }
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->all_done, NULL);
    b->rw = o.rw;
    b->bs = (uint32_t)o.bs;
    b->lbs = o.lbs;
    b->stride = o.stride;
    b->size = bs->size / o.lbs * o.lbs;
    b->count = o.timed ? UINT64_MAX : o.count;
    if (b->size < o.bs) {
        cli_fail(EXIT_USAGE, "bench", "the image (%" PRIu64 " bytes) is smaller than one request",
                 bs->size);
        rc = EXIT_USAGE;
        goto out;
    }
    for (uint64_t i = 0; i < o.qd; i++) {
        struct slot *s = &slots[i];
        if (posix_memalign((void **)&s->buf, 4096, o.bs) != 0) {
            s->buf = NULL;
            cli_fail(EXIT_IMAGE, "bench", "out of memory for %" PRIu64 " buffers", o.qd);
            goto out;
        }
        memset(s->buf, o.pattern, o.bs);
        s->iov.iov_base = s->buf;
        s->iov.iov_len = o.bs;
        s->b = b;
        s->cmd.sense = s->sense;
        s->cmd.attr = SCSI_TASK_SIMPLE;
        s->cmd.done = on_done;
        s->cmd.priv = s;
    }
    if (scsi_lun_create(&cfg, bs, 0, &b->lun, &err) < 0) {
        cli_fail(EXIT_IMAGE, "bench", "%s", err.msg);
        goto out;
    }
    unsigned workers = 0;
    rc = run(&o, b, slots, &workers);
out:
    if (b) {
        scsi_disp_destroy(b->disp); /* before the LUN it serves */
        if (b->lun)
            scsi_lun_destroy(b->lun);
        pthread_mutex_destroy(&b->lock);
        pthread_cond_destroy(&b->all_done);
    }
    for (uint64_t i = 0; slots && i < o.qd; i++)
        free(slots[i].buf);
    free(slots);
    free(b);
    blk_close(bs);
    return rc;
}
