/* One target port as a whole (configfs.h): which backstores its LUNs
 * serve, and its removal once none does. A domain's controller is one
 * port with a LUN per disk (`scuse tcmu up/down`); what a crash left
 * half made (a port, a TPG or a LUN with no link in it) goes with it. */
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

/* Calls fn(arg, lun dir, entry path) for each entry of each LUN of each
 * TPG of the port, until fn returns non-zero. */
typedef int (*lun_fn)(void *arg, const char *lun, const char *entry);

static int each_entry(const char *wdir, lun_fn fn, void *arg)
{
    DIR *dw = opendir(wdir);
    if (!dw)
        return errno == ENOENT ? 0 : -errno;
    int r = 0;
    struct dirent *t;
    while (r == 0 && (t = readdir(dw))) {
        if (strncmp(t->d_name, "tpgt_", 5) != 0)
            continue;
        char ldir[PATH_MAX];
        tcmu_pathf(ldir, sizeof(ldir), "%s/%s/lun", wdir, t->d_name);
        DIR *dl = opendir(ldir);
        struct dirent *l;
        while (r == 0 && dl && (l = readdir(dl))) {
            if (strncmp(l->d_name, "lun_", 4) != 0)
                continue;
            char lun[PATH_MAX];
            tcmu_pathf(lun, sizeof(lun), "%s/%s", ldir, l->d_name);
            DIR *de = opendir(lun);
            struct dirent *e;
            while (r == 0 && de && (e = readdir(de))) {
                if (e->d_name[0] == '.')
                    continue;
                char p[PATH_MAX];
                tcmu_pathf(p, sizeof(p), "%s/%s", lun, e->d_name);
                r = fn(arg, lun, p);
            }
            if (de)
                closedir(de);
            if (r == 0)
                r = fn(arg, lun, NULL);     /* the LUN itself, after its entries */
        }
        if (dl)
            closedir(dl);
    }
    closedir(dw);
    return r;
}

struct devs {
    char prefix[PATH_MAX];          /* <root>/target/core/user_ */
    uint32_t *hba;
    char (*names)[TCMU_NAME_MAX];
    unsigned max, n;
};

static int devs_visit(void *arg, const char *lun, const char *entry)
{
    (void)lun;
    struct devs *d = arg;
    char to[PATH_MAX];
    if (!entry || !realpath(entry, to) || strncmp(to, d->prefix, strlen(d->prefix)) != 0)
        return 0;
    char *rest = to + strlen(d->prefix), *slash = strchr(rest, '/');
    if (!slash || strchr(slash + 1, '/'))
        return 0;
    *slash = '\0';
    unsigned long long h;
    if (!tcmu_parse_u64(rest, &h) || h > UINT32_MAX)
        return 0;
    if (d->n < d->max) {
        d->hba[d->n] = (uint32_t)h;
        snprintf(d->names[d->n], TCMU_NAME_MAX, "%s", slash + 1);
    }
    d->n++;
    return 0;
}

int tcmu_fabric_wwn_devs(const char *root, enum tcmu_fabric f, const char *wwpn, uint32_t *hba,
                         char (*names)[TCMU_NAME_MAX], unsigned max, unsigned *n)
{
    struct tcmu_cfs c;
    tcmu_cfs_init(&c, root);
    struct devs d = { .hba = hba, .names = names, .max = max };
    tcmu_pathf(d.prefix, sizeof(d.prefix), "%s/target/core/user_", c.root);
    char wdir[PATH_MAX];
    tcmu_pathf(wdir, sizeof(wdir), "%s/target/%s/%s", c.root, tcmu_fabric_name(f), wwpn);
    int r = each_entry(wdir, devs_visit, &d);
    *n = d.n;
    return r;
}

struct rm {
    const struct tcmu_cfs *c;
    struct scuse_err *err;
};

static int rm_visit(void *arg, const char *lun, const char *entry)
{
    struct rm *m = arg;
    char to[PATH_MAX];
    if (entry) {
        ssize_t k = readlink(entry, to, sizeof(to) - 1);
        if (k < 0)
            return 0;               /* an attribute or group of the LUN */
        to[k] = '\0';
        return err_set(m->err, -ENOTEMPTY, "%s still serves %s", lun, to);
    }
    int r = tcmu_cfs_rmdir(m->c, lun);
    return r < 0 ? err_set(m->err, r, "%s: %s", lun, strerror(-r)) : 0;
}

int tcmu_fabric_remove_wwn(const char *root, enum tcmu_fabric f, const char *wwpn,
                           struct scuse_err *err)
{
    struct tcmu_cfs c;
    tcmu_cfs_init(&c, root);
    char wdir[PATH_MAX];
    tcmu_pathf(wdir, sizeof(wdir), "%s/target/%s/%s", c.root, tcmu_fabric_name(f), wwpn);
    if (!tcmu_cfs_is_dir(wdir))
        return 0;
    struct rm m = { &c, err };
    int r = each_entry(wdir, rm_visit, &m);
    if (r < 0)
        return r;
    DIR *dw = opendir(wdir);
    struct dirent *t;
    while (r == 0 && dw && (t = readdir(dw))) {
        if (strncmp(t->d_name, "tpgt_", 5) != 0)
            continue;
        char tpg[PATH_MAX], p[PATH_MAX], cur[128];
        tcmu_pathf(tpg, sizeof(tpg), "%s/%s", wdir, t->d_name);
        tcmu_pathf(p, sizeof(p), "%s/nexus", tpg);
        if (tcmu_read_line(p, cur, sizeof(cur)) > 0 && (r = tcmu_cfs_write(&c, p, "NULL")) < 0) {
            r = err_set(err, r, "%s: %s%s", p, strerror(-r), r == -EBUSY ?
                        " (a VM still uses this vhost-scsi target: stop it first)" : "");
            break;
        }
        if ((r = tcmu_cfs_rmdir(&c, tpg)) < 0)
            r = err_set(err, r, "%s: %s", tpg, strerror(-r));
    }
    if (dw)
        closedir(dw);
    if (r == 0 && (r = tcmu_cfs_rmdir(&c, wdir)) < 0)
        r = err_set(err, r, "%s: %s", wdir, strerror(-r));
    return r;
}
