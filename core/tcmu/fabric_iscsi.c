/* The iSCSI fabric (LIO's iscsi_target_mod): a target IQN with TPG 1,
 * LUN 0 linked to the backstore as for the other fabrics, then what only
 * iSCSI has: a network portal, either demo mode (any initiator logs in and
 * sees the TPG's LUNs) or an ACL mapping LUN 0 for each initiator named, no
 * CHAP, and the TPG enabled last. Teardown: the ACLs' mappings of a LUN
 * before the LUN, then ACLs and portals, then the TPG. */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tcmu/configfs.h"
#include "tcmu/fsutil.h"

/* RFC 3720 3.2.6.3: "iqn." yyyy-mm "." reversed domain [":" anything],
 * "eui." 16 hex digits, "naa." 16 or 32 hex digits; lower case (LIO
 * compares names as they are), at most 223 bytes. */
bool tcmu_iscsi_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n > 223)
        return false;
    if (!strncmp(name, "eui.", 4) || !strncmp(name, "naa.", 4)) {
        size_t h = n - 4;
        if (name[0] == 'e' ? h != 16 : h != 16 && h != 32)
            return false;
        for (size_t i = 4; i < n; i++)
            if (!isxdigit((unsigned char)name[i]))
                return false;
        return true;
    }
    if (strncmp(name, "iqn.", 4) != 0 || n < 13)
        return false;
    for (int i = 4; i < 11; i++)
        if (i == 8 ? name[i] != '-' : !isdigit((unsigned char)name[i]))
            return false;
    if (name[11] != '.' || !isalnum((unsigned char)name[12]))
        return false;
    for (size_t i = 12; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (!(islower(ch) || isdigit(ch) || ch == '.' || ch == '-' || ch == ':'))
            return false;
    }
    return true;
}

/* "a.b.c.d:port" or "[v6]:port", port 1..65535: the name of LIO's np
 * directory. */
bool tcmu_iscsi_portal_valid(const char *portal)
{
    const char *colon = strrchr(portal, ':');
    if (!colon || colon == portal || strlen(portal) >= TCMU_PORTAL_MAX)
        return false;
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (!isdigit((unsigned char)colon[1]) || *end || port == 0 || port > 65535)
        return false;
    size_t hl = (size_t)(colon - portal);
    if (portal[0] == '[') {
        if (portal[hl - 1] != ']' || hl < 4)
            return false;
        for (size_t i = 1; i < hl - 1; i++)
            if (!isxdigit((unsigned char)portal[i]) && portal[i] != ':' && portal[i] != '.')
                return false;
        return true;
    }
    unsigned parts = 0, v = 0, digits = 0;
    for (size_t i = 0; i <= hl; i++) {
        if (i == hl || portal[i] == '.') {
            if (!digits || v > 255)
                return false;
            parts++, v = 0, digits = 0;
        } else if (isdigit((unsigned char)portal[i]) && digits < 3) {
            v = v * 10 + (unsigned)(portal[i] - '0'), digits++;
        } else {
            return false;
        }
    }
    return parts == 4;
}

static int fail(struct scuse_err *err, int r, const char *path)
{
    return err_set(err, r, "%s: %s", path, strerror(-r));
}

int tcmu_iscsi_export(const struct tcmu_cfs *c, const struct tcmu_backstore *b, const char *tpg,
                      const char *lun, struct scuse_err *err)
{
    char p[PATH_MAX];
    int r;
    tcmu_pathf(p, sizeof(p), "%s/np", tpg);        /* configfs has it; a plain tree not */
    if ((r = tcmu_cfs_mkdir(c, p)) < 0)
        return fail(err, r, p);
    tcmu_pathf(p, sizeof(p), "%s/np/%s", tpg, b->portal);
    if ((r = tcmu_cfs_mkdir(c, p)) < 0)
        return err_set(err, r, "%s: %s (is the address this machine's and the port free?)", p,
                       strerror(-r));
    /* Demo mode: LIO makes a node ACL for each initiator that logs in,
     * with the TPG's LUNs, writable. Otherwise an explicit ACL. */
    const char *attrs[][2] = {
        { "authentication", "0" },
        { "generate_node_acls", b->demo_mode ? "1" : "0" },
        { "demo_mode_write_protect", "0" },
        { "cache_dynamic_acls", b->demo_mode ? "1" : "0" },
    };
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
        tcmu_pathf(p, sizeof(p), "%s/attrib/%s", tpg, attrs[i][0]);
        if ((r = tcmu_cfs_write(c, p, attrs[i][1])) < 0)
            return fail(err, r, p);
    }
    for (unsigned i = 0; !b->demo_mode && i < b->n_acls; i++) {
        char acl[PATH_MAX], mapped[PATH_MAX];
        tcmu_pathf(acl, sizeof(acl), "%s/acls/%s", tpg, b->acls[i]);
        tcmu_pathf(mapped, sizeof(mapped), "%s/lun_0", acl);
        tcmu_pathf(p, sizeof(p), "%s/acls", tpg);
        if ((r = tcmu_cfs_mkdir(c, p)) < 0 || (r = tcmu_cfs_mkdir(c, acl)) < 0 ||
            (r = tcmu_cfs_mkdir(c, mapped)) < 0)
            return fail(err, r, mapped);
        tcmu_pathf(p, sizeof(p), "%s/%s", mapped, b->name);
        if (!tcmu_cfs_links_to(p, lun) && symlink(lun, p) < 0)
            return fail(err, -errno, p);
    }
    tcmu_pathf(p, sizeof(p), "%s/enable", tpg);
    if ((r = tcmu_cfs_write(c, p, "1")) < 0)
        return fail(err, r, p);
    return 0;
}

/* Every entry of dir (directories and links), f(arg, path) each. */
static int each(const char *dir, int (*f)(void *, const char *), void *arg)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *de;
    int r = 0;
    while (r == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char p[PATH_MAX];
        tcmu_pathf(p, sizeof(p), "%s/%s", dir, de->d_name);
        r = f(arg, p);
    }
    closedir(d);
    return r;
}

struct ctx {
    const struct tcmu_cfs *c;
    const char *lun;            /* only the mappings of this LUN ("" = all) */
    struct scuse_err *err;
};

/* acls/INIT/lun_N: its link, then itself, when it maps ctx->lun. */
static int unmap_one(void *arg, const char *mapped)
{
    struct ctx *x = arg;
    const char *base = strrchr(mapped, '/');
    if (!base || strncmp(base + 1, "lun_", 4) != 0 || !tcmu_cfs_is_dir(mapped))
        return 0;
    DIR *d = opendir(mapped);
    struct dirent *de;
    bool ours = !x->lun[0], any_link = false;
    char link[PATH_MAX];
    while (d && (de = readdir(d))) {
        tcmu_pathf(link, sizeof(link), "%s/%s", mapped, de->d_name);
        char t[PATH_MAX];
        if (de->d_name[0] == '.' || readlink(link, t, sizeof(t)) < 0)
            continue;
        any_link = true;
        if (!x->lun[0] || tcmu_cfs_links_to(link, x->lun)) {
            ours = true;
            if (unlink(link) < 0 && errno != ENOENT) {
                int e = -errno;
                closedir(d);
                return fail(x->err, e, link);
            }
        }
    }
    if (d)
        closedir(d);
    if (!ours && any_link)
        return 0;
    int r = tcmu_cfs_rmdir(x->c, mapped);
    return r < 0 ? fail(x->err, r, mapped) : 0;
}

static int unmap_acl(void *arg, const char *acl)
{
    return each(acl, unmap_one, arg);
}

int tcmu_iscsi_unmap_lun(const struct tcmu_cfs *c, const char *tpg, const char *lun,
                         struct scuse_err *err)
{
    char acls[PATH_MAX];
    tcmu_pathf(acls, sizeof(acls), "%s/acls", tpg);
    struct ctx x = { c, lun, err };
    return each(acls, unmap_acl, &x);
}

static int rm(void *arg, const char *path)
{
    struct ctx *x = arg;
    int r = tcmu_cfs_rmdir(x->c, path);
    return r < 0 ? fail(x->err, r, path) : 0;
}

static int rm_acl(void *arg, const char *acl)
{
    int r = unmap_acl(arg, acl);
    return r < 0 ? r : rm(arg, acl);
}

int tcmu_iscsi_tpg_clear(const struct tcmu_cfs *c, const char *tpg, struct scuse_err *err)
{
    char p[PATH_MAX];
    struct ctx x = { c, "", err };
    int r;
    tcmu_pathf(p, sizeof(p), "%s/enable", tpg);
    char cur[8];
    if (tcmu_read_line(p, cur, sizeof(cur)) > 0 && strcmp(cur, "1") == 0 &&
        (r = tcmu_cfs_write(c, p, "0")) < 0)
        return fail(err, r, p);
    tcmu_pathf(p, sizeof(p), "%s/acls", tpg);
    if ((r = each(p, rm_acl, &x)) < 0)
        return r;
    tcmu_pathf(p, sizeof(p), "%s/np", tpg);
    return each(p, rm, &x);
}
