/* The backstore half of provisioning (configfs.h); the fabrics are in
 * fabric.c. */
#define _GNU_SOURCE
#include "tcmu/configfs.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "tcmu/config.h"
#include "tcmu/fsutil.h"
#include "util/log.h"

#define CONFIGFS_MAGIC 0x62656570

/* ---- the tree ---- */

void tcmu_cfs_init(struct tcmu_cfs *c, const char *root)
{
    struct statfs s;
    if (!realpath(root, c->root))
        snprintf(c->root, sizeof(c->root), "%s", root);
    c->real = statfs(c->root, &s) == 0 && s.f_type == CONFIGFS_MAGIC;
}

bool tcmu_cfs_is_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int mkdir_p(const char *path)
{
    char p[PATH_MAX];
    tcmu_pathf(p, sizeof(p), "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    return mkdir(p, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

int tcmu_cfs_mkdir(const struct tcmu_cfs *c, const char *path)
{
    (void)c;
    return mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* Everything under path, for a plain tree (configfs removes an item's
 * attributes and default groups itself). */
static int remove_contents(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    struct dirent *de;
    int r = 0;
    while ((de = readdir(d)) && r == 0) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[PATH_MAX];
        tcmu_pathf(p, sizeof(p), "%s/%s", path, de->d_name);
        if (tcmu_cfs_is_dir(p)) {
            if ((r = remove_contents(p)) == 0 && rmdir(p) < 0)
                r = -errno;
        } else if (unlink(p) < 0) {
            r = -errno;
        }
    }
    closedir(d);
    return r;
}

int tcmu_cfs_rmdir(const struct tcmu_cfs *c, const char *path)
{
    if (rmdir(path) == 0 || errno == ENOENT)
        return 0;
    int e = errno;
    if (c->real || (e != ENOTEMPTY && e != EEXIST))
        return -e;
    int r = remove_contents(path);
    if (r == 0 && rmdir(path) < 0)
        r = -errno;
    return r;
}

int tcmu_cfs_write(const struct tcmu_cfs *c, const char *path, const char *value)
{
    int r = tcmu_write_file(path, value);
    if (r == -ENOENT && !c->real) {
        /* A plain tree lacks the attribute groups configfs would have. */
        char dir[PATH_MAX];
        tcmu_pathf(dir, sizeof(dir), "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = '\0';
            if (mkdir_p(dir) == 0)
                r = tcmu_write_file(path, value);
        }
    }
    return r;
}

bool tcmu_cfs_links_to(const char *link, const char *dir)
{
    char a[PATH_MAX], b[PATH_MAX];
    struct stat st;
    if (lstat(link, &st) < 0 || !S_ISLNK(st.st_mode))
        return false;
    return realpath(link, a) && realpath(dir, b) && strcmp(a, b) == 0;
}

/* ---- names ---- */

bool tcmu_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

bool tcmu_wwn_valid(const char *wwn)
{
    if (strncmp(wwn, "naa.", 4) != 0 || strlen(wwn) != 4 + 16)
        return false;
    for (int i = 4; i < 20; i++) {
        char ch = wwn[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
            return false;
    }
    return wwn[4] == '5' || wwn[4] == '6' || wwn[4] == '3';
}

void tcmu_wwn_derive(const char *from, unsigned salt, char *out, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull ^ salt;
    for (const char *s = from; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 0x100000001b3ull;
    }
    /* NAA 5: 4-bit NAA, 24-bit company id (scuse's locally administered
     * one, as in the SCSI core's designators), 36 bits vendor-specific. */
    snprintf(out, len, "naa.5%06x%09llx", 0x5ac5e0u, (unsigned long long)(h & 0xfffffffffull));
}

/* ---- backstores ---- */

void tcmu_cfs_dev_path(const char *root, uint32_t hba, const char *dev, char *out, size_t len)
{
    tcmu_pathf(out, len, "%s/target/core/user_%u/%s", root, hba, dev);
}

int tcmu_cfs_dev_read(const char *root, uint32_t hba, const char *dev, const char *attr,
                      char *buf, size_t len)
{
    char p[PATH_MAX];
    tcmu_pathf(p, sizeof(p), "%s/target/core/user_%u/%s/%s", root, hba, dev, attr);
    return tcmu_read_line(p, buf, len);
}

/* Whether the backstore at dir is scuse's: its dev_config names scuse,
 * or, in scuse's own HBA, it has none yet (an interrupted create). */
static bool is_scuse(const char *dir, uint32_t hba, char *config, size_t len)
{
    char p[PATH_MAX];
    tcmu_pathf(p, sizeof(p), "%s/attrib/dev_config", dir);
    if (tcmu_read_line(p, config, len) < 0)
        config[0] = '\0';
    struct tcmu_image_cfg ic;
    if (tcmu_config_parse(config, &ic, NULL) != 0)
        return true;
    return config[0] == '\0' && hba == TCMU_SCUSE_HBA;
}

int tcmu_cfs_reset_ring(const char *root, uint32_t hba, const char *dev, struct scuse_err *err)
{
    static const struct {
        const char *attr, *value;
    } steps[] = { { "block_dev", "1" }, { "reset_ring", "1" }, { "block_dev", "0" } };
    char p[PATH_MAX];
    for (unsigned i = 0; i < 3; i++) {
        tcmu_pathf(p, sizeof(p), "%s/target/core/user_%u/%s/action/%s", root, hba, dev,
                 steps[i].attr);
        int r = tcmu_write_file(p, steps[i].value);
        if (r < 0) {
            if (i == 0)
                return err_set(err, r, "%s: %s", p, strerror(-r));
            /* Never leave the device blocked. */
            tcmu_pathf(p, sizeof(p), "%s/target/core/user_%u/%s/action/block_dev", root, hba, dev);
            tcmu_write_file(p, "0");
            return err_set(err, r, "%s: %s", p, strerror(-r));
        }
    }
    return 0;
}

static int cfs_fail(struct scuse_err *err, int r, const char *path, const char *hint)
{
    return err_set(err, r, "%s: %s%s", path, strerror(-r), hint ? hint : "");
}

static int write_attr(const struct tcmu_cfs *c, const char *dev, const char *attr,
                      const char *value, struct scuse_err *err)
{
    char p[PATH_MAX];
    tcmu_pathf(p, sizeof(p), "%s/%s", dev, attr);
    int r = tcmu_cfs_write(c, p, value);
    return r < 0 ? cfs_fail(err, r, p, NULL) : 0;
}

int tcmu_cfs_create(const char *root, const struct tcmu_backstore *b, struct scuse_err *err)
{
    struct tcmu_cfs c;
    tcmu_cfs_init(&c, root);
    root = c.root;
    char core[PATH_MAX], hba[PATH_MAX], dev[PATH_MAX], buf[TCMU_CONFIG_MAX + 16];
    tcmu_pathf(core, sizeof(core), "%s/target/core", root);
    if (!tcmu_cfs_is_dir(core))
        return err_set(err, -ENOENT, "%s: no LIO target core (modprobe target_core_user, and "
                       "mount configfs on %s)", core, root);
    tcmu_pathf(hba, sizeof(hba), "%s/user_%u", core, TCMU_SCUSE_HBA);
    int r = tcmu_cfs_mkdir(&c, hba);
    if (r < 0)
        return cfs_fail(err, r, hba, " (is target_core_user loaded?)");
    tcmu_cfs_dev_path(root, TCMU_SCUSE_HBA, b->name, dev, sizeof(dev));
    bool enabled = false;
    if (tcmu_cfs_is_dir(dev)) {
        char cur[TCMU_CONFIG_MAX];
        if (!is_scuse(dev, TCMU_SCUSE_HBA, cur, sizeof(cur)) || (cur[0] && strcmp(cur, b->config)))
            return err_set(err, -EEXIST, "backstore '%s' exists with dev_config '%s'", b->name,
                           cur);
        char p[PATH_MAX];
        tcmu_pathf(p, sizeof(p), "%s/enable", dev);
        enabled = tcmu_read_line(p, buf, sizeof(buf)) > 0 && strcmp(buf, "1") == 0;
    } else if ((r = tcmu_cfs_mkdir(&c, dev)) < 0) {
        return cfs_fail(err, r, dev, NULL);
    }
    if (!enabled) {
        /* nl_reply_supported=-1: enabling never waits for a daemon's
         * netlink reply, so this cannot hang whether or not `scuse tcmu
         * serve` runs; the image was checked by the caller. */
        char control[TCMU_CONFIG_MAX + 256];
        snprintf(control, sizeof(control),
                 "dev_config=%s,dev_size=%" PRIu64 ",hw_block_size=%u,hw_max_sectors=%u,"
                 "max_data_area_mb=%u,nl_reply_supported=-1",
                 b->config, b->size, b->block_size, b->max_sectors, b->data_area_mb);
        if ((r = write_attr(&c, dev, "control", control, err)) < 0 ||
            (r = write_attr(&c, dev, "attrib/emulate_write_cache", b->no_write_cache ? "0" : "1",
                            err)) < 0)
            return r;
        /* TMR notifications (5.9 and later): without them aborted commands
         * simply run to completion. */
        char p[PATH_MAX];
        tcmu_pathf(p, sizeof(p), "%s/attrib/tmr_notification", dev);
        if ((r = tcmu_cfs_write(&c, p, "1")) == -ENOENT)
            log_warn("tcmu: %s: not in this kernel; aborts are not passed to scuse", p);
        else if (r < 0)
            return cfs_fail(err, r, p, NULL);
        if (b->serial[0] && (r = write_attr(&c, dev, "wwn/vpd_unit_serial", b->serial, err)) < 0)
            return r;
        if ((r = write_attr(&c, dev, "enable", "1", err)) < 0)
            return r;
    }
    return tcmu_fabric_export(&c, b, dev, err);
}

/* Calls fn for every backstore in core/user_* (sorted by HBA, name). */
struct found {
    uint32_t hba;
    char name[TCMU_NAME_MAX];
};

static int cmp_found(const void *a, const void *b)
{
    const struct found *x = a, *y = b;
    return x->hba != y->hba ? (x->hba < y->hba ? -1 : 1) : strcmp(x->name, y->name);
}

static int list_user(const char *root, struct found **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char core[PATH_MAX];
    tcmu_pathf(core, sizeof(core), "%s/target/core", root);
    DIR *d = opendir(core);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct found *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    int r = 0;
    while ((de = readdir(d)) && r == 0) {
        unsigned long long hba;
        if (strncmp(de->d_name, "user_", 5) || !tcmu_parse_u64(de->d_name + 5, &hba) ||
            hba > UINT32_MAX)
            continue;
        char hp[PATH_MAX];
        tcmu_pathf(hp, sizeof(hp), "%s/%s", core, de->d_name);
        DIR *h = opendir(hp);
        struct dirent *he;
        while (h && (he = readdir(h))) {
            char dp[PATH_MAX];
            tcmu_pathf(dp, sizeof(dp), "%s/%s", hp, he->d_name);
            if (he->d_name[0] == '.' || !tcmu_cfs_is_dir(dp) || strlen(he->d_name) >= TCMU_NAME_MAX)
                continue;
            if (cnt == cap) {
                cap = cap ? 2 * cap : 16;
                struct found *nv = realloc(v, cap * sizeof(*v));
                if (!nv) {
                    r = -ENOMEM;
                    break;
                }
                v = nv;
            }
            v[cnt].hba = (uint32_t)hba;
            snprintf(v[cnt].name, sizeof(v[cnt].name), "%s", he->d_name);
            cnt++;
        }
        if (h)
            closedir(h);
    }
    closedir(d);
    if (r < 0) {
        free(v);
        return r;
    }
    if (cnt)
        qsort(v, cnt, sizeof(*v), cmp_found);
    *out = v;
    *n = cnt;
    return 0;
}

int tcmu_cfs_delete(const char *root, const char *name, bool *found, struct scuse_err *err)
{
    *found = false;
    struct tcmu_cfs c;
    tcmu_cfs_init(&c, root);
    root = c.root;
    struct found *v;
    size_t n;
    int r = list_user(root, &v, &n);
    if (r < 0)
        return err_set(err, r, "%s/target/core: %s", root, strerror(-r));
    for (size_t i = 0; i < n && r == 0; i++) {
        if (strcmp(v[i].name, name) != 0)
            continue;
        char dev[PATH_MAX], cfg[TCMU_CONFIG_MAX];
        tcmu_cfs_dev_path(root, v[i].hba, name, dev, sizeof(dev));
        if (!is_scuse(dev, v[i].hba, cfg, sizeof(cfg))) {
            r = err_set(err, -EPERM, "backstore user_%u/%s is not scuse's (dev_config '%s')",
                        v[i].hba, name, cfg);
            break;
        }
        *found = true;
        if ((r = tcmu_fabric_unexport(&c, dev, err)) < 0)
            break;
        /* Removing the item disables it: the kernel tells the daemon
         * (REMOVED_DEVICE) and unregisters the UIO device. */
        if ((r = tcmu_cfs_rmdir(&c, dev)) < 0) {
            r = cfs_fail(err, r, dev, NULL);
            break;
        }
        if (v[i].hba == TCMU_SCUSE_HBA) {
            char hba[PATH_MAX];
            tcmu_pathf(hba, sizeof(hba), "%s/target/core/user_%u", root, v[i].hba);
            if (rmdir(hba) < 0 && errno != ENOTEMPTY && errno != EBUSY && errno != ENOENT &&
                errno != EEXIST)
                log_warn("tcmu: %s: %s", hba, strerror(errno));
        }
    }
    free(v);
    return r;
}

int tcmu_cfs_list(const char *root, struct tcmu_cfs_dev **out, size_t *n, struct scuse_err *err)
{
    *out = NULL;
    *n = 0;
    struct tcmu_cfs c;
    tcmu_cfs_init(&c, root);
    root = c.root;
    struct found *v;
    size_t cnt;
    int r = list_user(root, &v, &cnt);
    if (r < 0)
        return err_set(err, r, "%s/target/core: %s", root, strerror(-r));
    struct tcmu_cfs_dev *d = cnt ? calloc(cnt, sizeof(*d)) : NULL;
    if (cnt && !d) {
        free(v);
        return err_set(err, -ENOMEM, "out of memory listing backstores");
    }
    size_t k = 0;
    for (size_t i = 0; i < cnt; i++) {
        char dev[PATH_MAX], buf[64];
        tcmu_cfs_dev_path(root, v[i].hba, v[i].name, dev, sizeof(dev));
        struct tcmu_cfs_dev *e = &d[k];
        if (!is_scuse(dev, v[i].hba, e->config, sizeof(e->config)))
            continue;
        e->hba = v[i].hba;
        snprintf(e->name, sizeof(e->name), "%s", v[i].name);
        char p[PATH_MAX];
        tcmu_pathf(p, sizeof(p), "%s/enable", dev);
        e->enabled = tcmu_read_line(p, buf, sizeof(buf)) > 0 && strcmp(buf, "1") == 0;
        unsigned long long size;
        tcmu_pathf(p, sizeof(p), "%s/attrib/dev_size", dev);
        if (tcmu_read_line(p, buf, sizeof(buf)) > 0 && tcmu_parse_u64(buf, &size))
            e->size = size;
        tcmu_fabric_find(&c, dev, e);
        k++;
    }
    free(v);
    if (!k) {
        free(d);
        d = NULL;
    }
    *out = d;
    *n = k;
    return 0;
}
