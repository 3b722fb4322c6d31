/* Exporting a backstore through a fabric (tcmu.md §7): a target port
 * (WWPN), TPG 1, LUN b->lun (0 for `tcmu create`, the disk's unit for a
 * domain's controller) a symlink to the backstore, and a
 * nexus naming the initiator side. The nexus comes first: tcm_loop scans
 * the LUN as soon as it is linked, and without a nexus that scan fails.
 * Teardown goes the other way. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tcmu/configfs.h"
#include "tcmu/fsutil.h"
#include "util/log.h"

static const char *const fabric_dirs[] = { [TCMU_FABRIC_VHOST] = "vhost",
                                           [TCMU_FABRIC_LOOPBACK] = "loopback",
                                           [TCMU_FABRIC_ISCSI] = "iscsi" };

const char *tcmu_fabric_name(enum tcmu_fabric f)
{
    return f >= TCMU_FABRIC_VHOST && f <= TCMU_FABRIC_ISCSI ? fabric_dirs[f] : "none";
}

static int fail(struct scuse_err *err, int r, const char *path, const char *hint)
{
    return err_set(err, r, "%s: %s%s", path, strerror(-r), hint ? hint : "");
}

/* The entries of dir whose names start with prefix, one at a time. */
static bool next_entry(DIR *d, const char *prefix, char *name, size_t len)
{
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.' || strncmp(de->d_name, prefix, strlen(prefix)))
            continue;
        snprintf(name, len, "%s", de->d_name);
        return true;
    }
    return false;
}

static bool has_entry(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    char name[NAME_MAX + 1];
    bool any = next_entry(d, prefix, name, sizeof(name));
    if (d)
        closedir(d);
    return any;
}

int tcmu_fabric_export(const struct tcmu_cfs *c, const struct tcmu_backstore *b,
                       const char *dev_dir, struct scuse_err *err)
{
    if (b->fabric == TCMU_FABRIC_NONE)
        return 0;
    const bool vhost = b->fabric == TCMU_FABRIC_VHOST, iscsi = b->fabric == TCMU_FABRIC_ISCSI;
    char base[PATH_MAX], wwn[PATH_MAX], tpg[PATH_MAX], lun[PATH_MAX], p[PATH_MAX];
    tcmu_pathf(base, sizeof(base), "%s/target/%s", c->root, fabric_dirs[b->fabric]);
    if (!tcmu_cfs_is_dir(base)) {
        /* configfs makes the fabric's directory when it is first used,
         * if the module is there. */
        int r = tcmu_cfs_mkdir(c, base);
        if (r < 0)
            return fail(err, r, base, vhost ? " (modprobe vhost_scsi)"
                                      : iscsi ? " (modprobe iscsi_target_mod)"
                                              : " (modprobe tcm_loop)");
    }
    tcmu_pathf(wwn, sizeof(wwn), "%s/%s", base, b->wwpn);
    tcmu_pathf(tpg, sizeof(tpg), "%s/tpgt_1", wwn);
    tcmu_pathf(lun, sizeof(lun), "%s/lun/lun_%u", tpg, b->lun);
    int r;
    if ((r = tcmu_cfs_mkdir(c, wwn)) < 0 || (r = tcmu_cfs_mkdir(c, tpg)) < 0)
        return fail(err, r, r == -ENOENT ? wwn : tpg, NULL);

    char cur[TCMU_WWN_MAX + 64];
    tcmu_pathf(p, sizeof(p), "%s/nexus", tpg);
    r = iscsi ? 0 : tcmu_read_line(p, cur, sizeof(cur));
    if (iscsi) {
        /* no nexus: initiators log in */
    } else if (r > 0 && strcmp(cur, b->initiator) != 0) {
        log_warn("tcmu: %s is %s, kept", p, cur);
    } else if (r <= 0) {
        /* No nexus reads as ENODEV on LIO, a missing file on a plain tree. */
        if ((r = tcmu_cfs_write(c, p, b->initiator)) < 0)
            return fail(err, r, p, NULL);
    }

    tcmu_pathf(p, sizeof(p), "%s/lun", tpg);
    if ((r = tcmu_cfs_mkdir(c, p)) < 0 || (r = tcmu_cfs_mkdir(c, lun)) < 0)
        return fail(err, r, lun, NULL);
    DIR *d = opendir(lun);
    char name[NAME_MAX + 1];
    bool linked = false;
    while (next_entry(d, "", name, sizeof(name))) {
        tcmu_pathf(p, sizeof(p), "%s/%s", lun, name);
        char target[PATH_MAX];
        ssize_t n = readlink(p, target, sizeof(target) - 1);
        if (n < 0)
            continue; /* an attribute or group of the LUN */
        if (tcmu_cfs_links_to(p, dev_dir)) {
            linked = true;
            continue;
        }
        target[n] = '\0';
        closedir(d);
        return err_set(err, -EEXIST, "%s: LUN %u of %s already serves %s", lun, b->lun, b->wwpn,
                       target);
    }
    if (d)
        closedir(d);
    if (!linked) {
        tcmu_pathf(p, sizeof(p), "%s/%s", lun, b->name);
        if (symlink(dev_dir, p) < 0)
            return fail(err, -errno, p, NULL);
    }
    return iscsi ? tcmu_iscsi_export(c, b, tpg, lun, err) : 0;
}

/* Calls visit(arg, fabric, wwn, tpg dir, tpgt, lun dir, lun, link) for
 * every LUN link that leads to dev_dir, until it returns non-zero. */
typedef int (*visit_fn)(void *arg, enum tcmu_fabric f, const char *wwn, const char *tpg,
                        unsigned tpgt, const char *lun, unsigned lun_no, const char *link);

static int walk(const struct tcmu_cfs *c, const char *dev_dir, visit_fn visit, void *arg)
{
    int r = 0;
    for (int f = TCMU_FABRIC_VHOST; f <= TCMU_FABRIC_ISCSI && r == 0; f++) {
        char base[PATH_MAX], wname[NAME_MAX + 1], tname[NAME_MAX + 1], lname[NAME_MAX + 1],
            kname[NAME_MAX + 1];
        tcmu_pathf(base, sizeof(base), "%s/target/%s", c->root, fabric_dirs[f]);
        DIR *dw = opendir(base);
        while (r == 0 && next_entry(dw, "", wname, sizeof(wname))) {
            char wdir[PATH_MAX];
            tcmu_pathf(wdir, sizeof(wdir), "%s/%s", base, wname);
            DIR *dt = opendir(wdir);
            while (r == 0 && next_entry(dt, "tpgt_", tname, sizeof(tname))) {
                char tdir[PATH_MAX], ldir[PATH_MAX];
                tcmu_pathf(tdir, sizeof(tdir), "%s/%s", wdir, tname);
                tcmu_pathf(ldir, sizeof(ldir), "%s/lun", tdir);
                DIR *dl = opendir(ldir);
                while (r == 0 && next_entry(dl, "lun_", lname, sizeof(lname))) {
                    char ndir[PATH_MAX];
                    tcmu_pathf(ndir, sizeof(ndir), "%s/%s", ldir, lname);
                    DIR *dk = opendir(ndir);
                    while (r == 0 && next_entry(dk, "", kname, sizeof(kname))) {
                        char link[PATH_MAX];
                        tcmu_pathf(link, sizeof(link), "%s/%s", ndir, kname);
                        if (tcmu_cfs_links_to(link, dev_dir))
                            r = visit(arg, (enum tcmu_fabric)f, wname, tdir,
                                      (unsigned)strtoul(tname + 5, NULL, 10), ndir,
                                      (unsigned)strtoul(lname + 4, NULL, 10), link);
                    }
                    if (dk)
                        closedir(dk);
                }
                if (dl)
                    closedir(dl);
            }
            if (dt)
                closedir(dt);
        }
        if (dw)
            closedir(dw);
    }
    return r;
}

struct find_arg {
    struct tcmu_cfs_dev *d;
};

static int find_visit(void *arg, enum tcmu_fabric f, const char *wwn, const char *tpg,
                      unsigned tpgt, const char *lun, unsigned lun_no, const char *link)
{
    (void)tpg, (void)lun, (void)link;
    struct tcmu_cfs_dev *d = ((struct find_arg *)arg)->d;
    d->fabric = f;
    snprintf(d->wwpn, sizeof(d->wwpn), "%s", wwn);
    d->tpgt = tpgt;
    d->lun = lun_no;
    return 1;
}

bool tcmu_fabric_find(const struct tcmu_cfs *c, const char *dev_dir, struct tcmu_cfs_dev *d)
{
    struct find_arg a = { d };
    d->fabric = TCMU_FABRIC_NONE;
    return walk(c, dev_dir, find_visit, &a) > 0;
}

/* Unexport: links and LUN directories go during the walk; the TPGs they
 * were in are remembered and removed afterwards if no LUN is left. */
struct unexport {
    const struct tcmu_cfs *c;
    struct scuse_err *err;
    char tpgs[16][PATH_MAX];
    unsigned n;
};

static int unexport_visit(void *arg, enum tcmu_fabric f, const char *wwn, const char *tpg,
                          unsigned tpgt, const char *lun, unsigned lun_no, const char *link)
{
    (void)wwn, (void)tpgt, (void)lun_no;
    struct unexport *u = arg;
    int r;
    /* An ACL's mapping holds the LUN: it goes first. */
    if (f == TCMU_FABRIC_ISCSI && (r = tcmu_iscsi_unmap_lun(u->c, tpg, lun, u->err)) < 0)
        return r;
    if (unlink(link) < 0 && errno != ENOENT)
        return fail(u->err, -errno, link, NULL);
    r = tcmu_cfs_rmdir(u->c, lun);
    if (r < 0)
        return fail(u->err, r, lun, NULL);
    if (u->n < 16)
        snprintf(u->tpgs[u->n++], PATH_MAX, "%s", tpg);
    return 0;
}

int tcmu_fabric_unexport(const struct tcmu_cfs *c, const char *dev_dir, struct scuse_err *err)
{
    struct unexport *u = calloc(1, sizeof(*u));
    if (!u)
        return err_set(err, -ENOMEM, "out of memory");
    u->c = c;
    u->err = err;
    /* Each removal changes the directories walked: walk again until no
     * link is left (a backstore is rarely exported more than once). */
    int r;
    unsigned before;
    do {
        before = u->n;
        r = walk(c, dev_dir, unexport_visit, u);
    } while (r == 0 && u->n != before && u->n < 16);
    for (unsigned i = 0; i < u->n && r == 0; i++) {
        char lun[PATH_MAX], nexus[PATH_MAX], cur[128], wwn[PATH_MAX];
        tcmu_pathf(lun, sizeof(lun), "%s/lun", u->tpgs[i]);
        if (!tcmu_cfs_is_dir(u->tpgs[i]) || has_entry(lun, "lun_"))
            continue;
        char iscsi_dir[PATH_MAX];
        tcmu_pathf(iscsi_dir, sizeof(iscsi_dir), "%s/target/iscsi/", c->root);
        if (!strncmp(u->tpgs[i], iscsi_dir, strlen(iscsi_dir)) &&
            (r = tcmu_iscsi_tpg_clear(c, u->tpgs[i], err)) < 0)
            break;
        tcmu_pathf(nexus, sizeof(nexus), "%s/nexus", u->tpgs[i]);
        if (tcmu_read_line(nexus, cur, sizeof(cur)) > 0 &&
            (r = tcmu_cfs_write(c, nexus, "NULL")) < 0) {
            r = fail(err, r, nexus, r == -EBUSY ? " (a VM still uses this vhost-scsi target: "
                                                   "stop it first)" : NULL);
            break;
        }
        if ((r = tcmu_cfs_rmdir(c, u->tpgs[i])) < 0) {
            r = fail(err, r, u->tpgs[i], NULL);
            break;
        }
        tcmu_pathf(wwn, sizeof(wwn), "%s", u->tpgs[i]);
        char *slash = strrchr(wwn, '/');
        if (slash)
            *slash = '\0';
        if (!has_entry(wwn, "tpgt_") && (r = tcmu_cfs_rmdir(c, wwn)) < 0)
            r = fail(err, r, wwn, NULL);
    }
    free(u);
    return r;
}
