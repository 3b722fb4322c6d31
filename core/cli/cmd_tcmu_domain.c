/* scuse tcmu up|down FILE.xml: a domain's vhost-scsi targets (tcmu_domain.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/tcmu_domain.h"
#include "tcmu/config.h"
#include "tcmu/configfs.h"

#define DEFAULT_CONFIGFS "/sys/kernel/config"
#define DEFAULT_DATA_AREA_MB 1024u
#define MAX_XFER_BYTES (32u << 20)  /* what the SCSI core's LUNs take in one command */
#define MAX_PORT_DEVS 1024

static const char *root_of(const struct tcmu_domain_opts *o)
{
    return o->configfs ? o->configfs : DEFAULT_CONFIGFS;
}

/* DIR/NAME.tcmu.xml, DIR as the options or the domain say. */
static int copy_path(const struct domain *d, const struct tcmu_domain_opts *o, char *out,
                     size_t len, struct scuse_err *err)
{
    const char *dir = o->state_dir ? o->state_dir : d->socket_dir ? d->socket_dir
                                                                  : DOM_SOCKET_DIR;
    if (dir[0] != '/')
        return err_set(err, -EINVAL, "state directory '%s' is not absolute", dir);
    if (strchr(d->name, '/'))
        return err_set(err, -EINVAL, "%s: domain name '%s' has a '/'", d->file, d->name);
    int n = snprintf(out, len, "%s/%s.tcmu.xml", dir, d->name);
    if (n < 0 || (size_t)n >= len)
        return err_set(err, -ENAMETOOLONG, "state directory '%s': path too long", dir);
    return 0;
}

/* The backstore of a disk: NAME-scsiC-U, NAME as is when it makes a
 * configfs name, else its letters and digits and a hash of it (so two
 * names that read alike do not share backstores). */
static void backstore_name(const struct domain *d, const struct dom_disk *disk, char *out,
                           size_t len)
{
    char base[48];
    size_t n = strlen(d->name);
    bool plain = n > 0 && n <= 40 && d->name[0] != '.';
    for (size_t i = 0; plain && i < n; i++) {
        char c = d->name[i];
        plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-' || c == '.';
    }
    if (plain) {
        snprintf(base, sizeof(base), "%s", d->name);
    } else {
        uint32_t h = 2166136261u;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            char c = d->name[i];
            h = (h ^ (uint8_t)c) * 16777619u;
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
            if (k < 31)
                base[k++] = ok ? c : '_';
        }
        snprintf(base + k, sizeof(base) - k, "-%08x", h);
    }
    snprintf(out, len, "%s-scsi%u-%u", base, disk->controller, disk->unit);
}

static int write_copy(const char *path, const char *xml, size_t len, struct scuse_err *err)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return err_set(err, -errno, "state directory '%s': %s", dir, strerror(errno));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_set(err, -errno, "'%s': %s", tmp, strerror(errno));
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, xml + done, len - done);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    /* The daemon reads it whenever it (re)opens a disk: it must be whole. */
    int r = done == len && fsync(fd) == 0 ? 0 : -EIO;
    close(fd);
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return err_set(err, r, "'%s': %s", path, strerror(-r));
    }
    return 0;
}

void tcmu_lun_serial(struct blk_node *bs, const struct scsi_lun_config *cfg, char *out,
                     size_t len)
{
    out[0] = '\0';
    struct scsi_lun *lun;
    if (scsi_lun_create(cfg, bs, 0, &lun, NULL) < 0)
        return;
    uint8_t cdb[6] = { 0x12, 0x01, 0x80, 0, 255, 0 }, page[255], sense[SCSI_SENSE_MAX];
    struct iovec iov;
    struct scsi_cmd cmd = { .cdb = cdb, .cdb_len = 6, .dir = SCSI_DIR_FROM_DEV, .sense = sense };
    cmd.data = iov_view_of_buf(&iov, page, sizeof(page));
    scsi_cmd_prepare(lun, &cmd);
    scsi_cmd_execute(lun, &cmd);
    if (cmd.status == SCSI_STATUS_GOOD && cmd.xfer >= 4 && page[1] == 0x80) {
        size_t n = page[3] < cmd.xfer - 4 ? page[3] : cmd.xfer - 4;
        while (n && page[4 + n - 1] == ' ')
            n--;
        snprintf(out, len, "%.*s", (int)n, (const char *)page + 4);
    }
    scsi_lun_destroy(lun);
}

/* The backstore for disk, checked as the daemon will open it. */
static int backstore_of(const struct domain *d, const struct dom_disk *disk, const char *copy,
                        const struct tcmu_domain_opts *o, struct tcmu_backstore *b,
                        struct scuse_err *err)
{
    memset(b, 0, sizeof(*b));
    backstore_name(d, disk, b->name, sizeof(b->name));
    int r = tcmu_config_format_domain(disk->controller, disk->unit, copy, b->config,
                                      sizeof(b->config), err);
    if (r < 0)
        return r;
    if (disk->cfg.block_size != 512 && disk->cfg.block_size != 4096)
        return err_set(err, -EINVAL, "%s:%u: <blockio>: the kernel path serves 512 or "
                       "4096-byte blocks, not %u", d->file, disk->line, disk->cfg.block_size);
    /* A cdrom backstore is told by its 2048-byte blocks; it needs a disc. */
    bool cd = disk->cfg.device == SCSI_DEVICE_CDROM;
    if (cd && !disk->source)
        return err_set(err, -EINVAL, "%s:%u: <disk> %s: an empty cdrom drive: a TCMU backstore "
                       "needs a medium (vhost-user-scsi serves empty drives)", d->file,
                       disk->line, disk->dev);
    uint32_t lbs = cd ? TCMU_CDROM_BLOCK_SIZE : disk->cfg.block_size;
    /* Served already (up run again): the daemon holds the image's write
     * lock, so the image is only looked at. */
    char cur[TCMU_CONFIG_MAX];
    struct dom_disk dd = *disk;
    if (tcmu_cfs_dev_read(root_of(o), TCMU_SCUSE_HBA, b->name, "attrib/dev_config", cur,
                          sizeof(cur)) > 0 && strcmp(cur, b->config) == 0)
        dd.open_flags = (dd.open_flags & ~(unsigned)BLK_OPEN_RW) | BLK_OPEN_SHARE;
    struct blk_node *bs;
    struct scuse_err oerr = { 0 };
    if ((r = dom_disk_open(&dd, &bs, &oerr)) < 0)
        return err_set(err, r, "%s:%u: <disk> %s: %s", d->file, disk->line, disk->dev,
                       cli_reason(&oerr, r));
    b->size = bs->size;
    if (bs->size < lbs) {
        blk_close(bs);
        return err_set(err, -EINVAL, "%s: %" PRIu64 " bytes is less than one block",
                       disk->source, b->size);
    }
    tcmu_lun_serial(bs, &disk->cfg, b->serial, sizeof(b->serial));
    blk_close(bs);
    b->block_size = lbs;
    b->max_sectors = MAX_XFER_BYTES / b->block_size;
    b->data_area_mb = o->data_area_mb ? o->data_area_mb : DEFAULT_DATA_AREA_MB;
    if (b->data_area_mb < (MAX_XFER_BYTES >> 20))
        b->max_sectors = (b->data_area_mb << 20) / b->block_size;
    b->no_write_cache = !disk->cfg.write_cache;
    b->lun = disk->unit;
    b->fabric = TCMU_FABRIC_VHOST;
    return 0;
}

int tcmu_domain_up(const struct domain *d, const char *xml, size_t len,
                   const struct tcmu_domain_opts *o, struct scuse_err *err)
{
    if (!strcmp(d->transport, "vhost-user-scsi"))
        return err_set(err, -EINVAL, "%s: converted for vhost-user-scsi: scuse serve --domain "
                       "serves it, not the kernel", d->file);
    char copy[PATH_MAX];
    int r = copy_path(d, o, copy, sizeof(copy), err);
    if (r < 0)
        return r;
    unsigned ports = 0;
    for (unsigned c = 0; c < d->n_ctrl; c++)
        ports += d->ctrl[c].n_disks > 0;
    if (!ports)
        return err_set(err, -EINVAL, "%s: no virtio-scsi controller has disks", d->file);
    /* The daemon reads the copy when the kernel announces a device. */
    if ((r = write_copy(copy, xml, len, err)) < 0)
        return r;
    for (unsigned c = 0; c < d->n_ctrl; c++) {
        const struct dom_controller *k = &d->ctrl[c];
        if (!k->n_disks)
            continue;
        char wwpn[24];
        dom_controller_wwpn(d, k, wwpn);
        if (o->out)
            fprintf(o->out, "controller %u: vhost-scsi target %s, TPG 1\n", k->index, wwpn);
        for (unsigned i = 0; i < d->n_disks; i++) {
            const struct dom_disk *disk = &d->disks[i];
            if (disk->controller != k->index)
                continue;
            struct tcmu_backstore b;
            if ((r = backstore_of(d, disk, copy, o, &b, err)) < 0)
                return r;
            snprintf(b.wwpn, sizeof(b.wwpn), "%s", wwpn);
            tcmu_wwn_derive(wwpn, 1, b.initiator, sizeof(b.initiator));
            if ((r = tcmu_cfs_create(root_of(o), &b, err)) < 0) {
                err_prefix(err, "%s:%u: <disk> %s: ", d->file, disk->line, disk->dev);
                return r;
            }
            if (o->out) {
                char human[32];
                cli_human_size(b.size, human, sizeof(human));
                fprintf(o->out, "  LUN %u: %s (%s, %s, %u-byte blocks), backstore user_%u/%s\n",
                        disk->unit, disk->source, disk->fmt, human, b.block_size,
                        TCMU_SCUSE_HBA, b.name);
            }
        }
    }
    return 0;
}

/* Whether the backstore name serves a domain's disk from another copy
 * than ours (another domain whose name reads the same): not ours. */
static bool someone_elses(const char *root, const char *name, const char *copy)
{
    char cur[TCMU_CONFIG_MAX];
    struct tcmu_image_cfg ic;
    return tcmu_cfs_dev_read(root, TCMU_SCUSE_HBA, name, "attrib/dev_config", cur,
                             sizeof(cur)) > 0 &&
           tcmu_config_parse(cur, &ic, NULL) > 0 && ic.domain && strcmp(ic.path, copy) != 0;
}

int tcmu_domain_down(const struct domain *d, const struct tcmu_domain_opts *o,
                     struct scuse_err *err)
{
    char copy[PATH_MAX];
    int r = copy_path(d, o, copy, sizeof(copy), err);
    if (r < 0)
        return r;
    const char *root = root_of(o);
    uint32_t *hba = calloc(MAX_PORT_DEVS, sizeof(*hba));
    char (*names)[TCMU_NAME_MAX] = calloc(MAX_PORT_DEVS, sizeof(*names));
    if (!hba || !names) {
        free(hba);
        free(names);
        return err_set(err, -ENOMEM, "out of memory");
    }
    for (unsigned c = 0; c < d->n_ctrl && r == 0; c++) {
        const struct dom_controller *k = &d->ctrl[c];
        if (!k->n_disks)
            continue;
        char wwpn[24];
        dom_controller_wwpn(d, k, wwpn);
        /* What the port serves (whatever the XML says now), then what the
         * XML names (a backstore a crash left unexported), then the port. */
        unsigned n = 0, gone = 0;
        char port[PATH_MAX];
        snprintf(port, sizeof(port), "%s/target/vhost/%s", root, wwpn);
        bool had_port = access(port, F_OK) == 0;
        tcmu_fabric_wwn_devs(root, TCMU_FABRIC_VHOST, wwpn, hba, names, MAX_PORT_DEVS, &n);
        bool found;
        for (unsigned i = 0; i < n && i < MAX_PORT_DEVS && r == 0; i++) {
            r = tcmu_cfs_delete(root, names[i], &found, err);
            gone += found;
        }
        for (unsigned i = 0; i < d->n_disks && r == 0; i++) {
            if (d->disks[i].controller != k->index)
                continue;
            char name[TCMU_NAME_MAX];
            backstore_name(d, &d->disks[i], name, sizeof(name));
            if (someone_elses(root, name, copy)) {
                fprintf(stderr, "scuse tcmu down: backstore %s serves another domain's disk: "
                        "left alone\n", name);
                continue;
            }
            r = tcmu_cfs_delete(root, name, &found, err);
            gone += found;
        }
        if (r == 0)
            r = tcmu_fabric_remove_wwn(root, TCMU_FABRIC_VHOST, wwpn, err);
        if (r == 0 && o->out && (had_port || gone))
            fprintf(o->out, "controller %u: vhost-scsi target %s removed, %u backstore%s\n",
                    k->index, wwpn, gone, gone == 1 ? "" : "s");
        else if (r == 0 && o->out)
            fprintf(o->out, "controller %u: no vhost-scsi target %s, no backstore: nothing to "
                    "remove\n", k->index, wwpn);
    }
    free(hba);
    free(names);
    if (r == 0 && unlink(copy) < 0 && errno != ENOENT)
        r = err_set(err, -errno, "'%s': %s", copy, strerror(errno));
    return r;
}

int tcmu_domain_disk(const char *xml, unsigned ctrl, unsigned unit, struct scsi_lun_config *cfg,
                     struct blk_node **bs, struct scuse_err *err)
{
    struct domain *d;
    int r = dom_load(xml, &d, err);
    if (r < 0)
        return r;
    r = err_set(err, -ENOENT, "%s: no disk at unit %u of controller %u", xml, unit, ctrl);
    for (unsigned i = 0; i < d->n_disks; i++) {
        const struct dom_disk *disk = &d->disks[i];
        if (disk->controller != ctrl || disk->unit != unit)
            continue;
        err_clear(err);
        struct scuse_err oerr = { 0 };
        *cfg = disk->cfg;
        r = dom_disk_open(disk, bs, &oerr);
        if (r < 0)
            err_set(err, r, "%s:%u: <disk> %s: %s", xml, disk->line, disk->dev,
                    cli_reason(&oerr, r));
        break;
    }
    dom_free(d);
    return r;
}

/* ---- the command ---- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scuse tcmu up FILE.xml [--configfs DIR] [--state-dir DIR] [--data-area-mb N]\n"
        "       scuse tcmu down FILE.xml [--configfs DIR] [--state-dir DIR]\n"
        "up     a vhost-scsi target per virtio-scsi controller of the domain (the WWPN of the\n"
        "       <hostdev> `scuse domain --transport vhost-scsi` writes), TPG 1, and a TCMU\n"
        "       backstore per disk at LUN = its unit, served by `scuse tcmu serve` with the\n"
        "       settings its <disk> gives; running it again finishes or confirms what is there\n"
        "down   remove them (and what an interrupted up or down left); nothing there is fine\n"
        "  --state-dir DIR     where the domain's XML copy lives (default: the domain's\n"
        "                      socket-dir, else " DOM_SOCKET_DIR ")\n"
        "  --configfs DIR      configfs root (default " DEFAULT_CONFIGFS ")\n"
        "  --data-area-mb N    each backstore's ring data area (default %u)\n",
        DEFAULT_DATA_AREA_MB);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *b = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
        if (!b) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

int cmd_tcmu_updown(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "configfs", required_argument, NULL, 'c' },
        { "state-dir", required_argument, NULL, 's' },
        { "data-area-mb", required_argument, NULL, 'a' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const bool up = strcmp(argv[0], "up") == 0;
    struct tcmu_domain_opts o = { .out = stdout };
    int c;
    uint64_t v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o.configfs = optarg; break;
        case 's': o.state_dir = optarg; break;
        case 'a':
            if (!up || cli_parse_size(optarg, &v) < 0 || v < 1 || v > (1u << 20))
                return cli_fail(EXIT_USAGE, "tcmu", "%s: --data-area-mb '%s': expected 1..%u "
                                "(an option of up)", argv[0], optarg, 1u << 20);
            o.data_area_mb = (unsigned)v;
            break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1)
        return cli_fail(EXIT_USAGE, "tcmu", "%s: expected one domain XML file", argv[0]);
    const char *file = argv[optind];
    size_t len = 0;
    char *xml = read_file(file, &len);
    if (!xml) {
        fprintf(stderr, "scuse tcmu %s: '%s': %s\n", argv[0], file, strerror(errno));
        return EXIT_USAGE;
    }
    struct domain *d;
    struct scuse_err err = { 0 };
    int r = dom_parse(xml, len, file, &d, &err);
    if (r == 0) {
        r = up ? tcmu_domain_up(d, xml, len, &o, &err) : tcmu_domain_down(d, &o, &err);
        dom_free(d);
    }
    free(xml);
    if (r < 0) {
        fprintf(stderr, "scuse tcmu %s: %s\n", argv[0], err.msg);
        return EXIT_USAGE;
    }
    if (up)
        printf("commands are answered while 'scuse tcmu serve' runs\n");
    return EXIT_OK;
}
