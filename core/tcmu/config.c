#include "tcmu/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_fmt(const char *f, size_t n, struct scuse_err *err)
{
    if (n == 0 || n >= TCMU_FMT_MAX)
        return err_set(err, -EINVAL, "dev_config: format name of %zu characters", n);
    for (size_t i = 0; i < n; i++)
        if (!((f[i] >= 'a' && f[i] <= 'z') || (f[i] >= '0' && f[i] <= '9') || f[i] == '_'))
            return err_set(err, -EINVAL, "dev_config: format name '%.*s' is not lower-case "
                           "letters and digits", (int)n, f);
    return 0;
}

static int check_path(const char *p, struct scuse_err *err)
{
    if (p[0] != '/')
        return err_set(err, -EINVAL, "dev_config: image path '%s' is not absolute", p);
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == ',')
            return err_set(err, -EINVAL, "dev_config: image path '%s' has a %s, which the "
                           "kernel's control string cannot carry", p,
                           *c == ',' ? "comma" : "control character");
    return 0;
}

/* The policy part of a dev_config ('+' between entries) into out->policy
 * (':' between them), checked by the SCSI layer's parser. */
static int parse_policy(const char *config, const char *p, size_t n, struct tcmu_image_cfg *out,
                        struct scuse_err *err)
{
    for (size_t i = 0; i < n; i++)
        out->policy[i] = p[i] == '+' ? ':' : p[i];
    out->policy[n] = '\0';
    struct scsi_lun_config cfg;
    struct scuse_err perr = { 0 };
    scsi_lun_config_default(&cfg);
    if (scsi_policy_parse(out->policy, &cfg, &perr) < 0)
        return err_set(err, -EINVAL, "dev_config '%s': command policy: %s", config, perr.msg);
    return 0;
}

int tcmu_config_parse(const char *config, struct tcmu_image_cfg *out, struct scuse_err *err)
{
    memset(out, 0, sizeof(*out));
    const size_t sub = strlen(TCMU_SUBTYPE);
    if (strncmp(config, TCMU_SUBTYPE "/", sub + 1) != 0)
        return 0;
    const char *rest = config + sub + 1;
    if (strlen(config) >= TCMU_CONFIG_MAX)
        return err_set(err, -EINVAL, "dev_config is longer than %d bytes", TCMU_CONFIG_MAX - 1);
    /* A config written with `echo` into attrib/dev_config keeps its
     * newline (the kernel stores the write as is): one is dropped. */
    char buf[TCMU_CONFIG_MAX];
    size_t n = strlen(rest);
    if (n && rest[n - 1] == '\n') {
        memcpy(buf, rest, n - 1);
        buf[n - 1] = '\0';
        rest = buf;
    }
    const char *path = rest;
    if (strncmp(rest, "domain=", 7) == 0) {
        char *end;
        unsigned long c = strtoul(rest + 7, &end, 10), u = 0;
        bool ok = end > rest + 7 && *end == '.';
        const char *p = end + 1;
        if (ok) {
            u = strtoul(p, &end, 10);
            ok = end > p && *end == '@' && c <= 0xffff && u <= 0xffff;
        }
        if (!ok)
            return err_set(err, -EINVAL, "dev_config '%s': expected " TCMU_SUBTYPE
                           "/domain=<controller>.<unit>@<absolute path>", config);
        out->domain = true;
        out->ctrl = (unsigned)c;
        out->unit = (unsigned)u;
        path = end + 1;
    } else if (rest[0] != '/') {
        const char *at = strchr(rest, '@');
        if (!at)
            return err_set(err, -EINVAL, "dev_config '%s': expected " TCMU_SUBTYPE
                           "/<format>[;<policy>]@<absolute path> or " TCMU_SUBTYPE
                           "/<absolute path>", config);
        const char *semi = memchr(rest, ';', (size_t)(at - rest));
        const char *fmt_end = semi ? semi : at;
        int r = fmt_end == rest && semi ? 0 : check_fmt(rest, (size_t)(fmt_end - rest), err);
        if (r < 0)
            return r;
        memcpy(out->fmt, rest, (size_t)(fmt_end - rest));
        /* Sections: pbs=N first if there, then the policy (the rest). */
        if (semi && !strncmp(semi + 1, "pbs=", 4)) {
            char *end;
            unsigned long v = strtoul(semi + 5, &end, 10);
            if (end == semi + 5 || (*end != ';' && *end != '@') || !scsi_phys_size_ok(v))
                return err_set(err, -EINVAL, "dev_config '%s': pbs= wants a power of two, 512 "
                               "to 1048576", config);
            out->phys_size = (uint32_t)v;
            semi = *end == ';' ? end : NULL;
        }
        if (semi && (r = parse_policy(config, semi + 1, (size_t)(at - semi - 1), out, err)) < 0)
            return r;
        path = at + 1;
    }
    int r = check_path(path, err);
    if (r < 0)
        return r;
    snprintf(out->path, sizeof(out->path), "%s", path);
    return 1;
}

int tcmu_config_format_policy(const char *fmt, const struct scsi_lun_config *cfg,
                              const char *path, char *out, size_t len, struct scuse_err *err)
{
    return tcmu_config_format_lun(fmt, cfg, 0, path, out, len, err);
}

int tcmu_config_format_lun(const char *fmt, const struct scsi_lun_config *cfg, uint32_t phys_size,
                           const char *path, char *out, size_t len, struct scuse_err *err)
{
    int r = check_path(path, err);
    if (r < 0)
        return r;
    if (fmt && *fmt && (r = check_fmt(fmt, strlen(fmt), err)) < 0)
        return r;
    char policy[SCSI_POLICY_TEXT_MAX * 2];
    int pn = cfg ? scsi_policy_format(cfg, '+', policy, sizeof(policy)) : 0;
    if (pn >= (int)sizeof(policy))
        return err_set(err, -ENAMETOOLONG, "the command policy is %d bytes", pn);
    char pbs[24] = "";
    if (phys_size)
        snprintf(pbs, sizeof(pbs), ";pbs=%u", phys_size);
    int n;
    if (pn > 0 || pbs[0])
        n = snprintf(out, len, TCMU_SUBTYPE "/%s%s%s%s@%s", fmt ? fmt : "", pbs, pn > 0 ? ";" : "",
                     pn > 0 ? policy : "", path);
    else if (fmt && *fmt)
        n = snprintf(out, len, TCMU_SUBTYPE "/%s@%s", fmt, path);
    else
        n = snprintf(out, len, TCMU_SUBTYPE "/%s", path);
    if (n < 0 || (size_t)n >= len || n >= TCMU_CONFIG_MAX)
        return err_set(err, -ENAMETOOLONG, "dev_config for '%s'%s would be %d bytes, more than "
                       "the kernel's %d%s", path, pn > 0 ? " and its command policy" : "", n,
                       TCMU_CONFIG_MAX - 1,
                       pn > 0 ? " (a shorter path, e.g. a symlink, or fewer commands)" : "");
    return 0;
}

int tcmu_config_format_domain(unsigned ctrl, unsigned unit, const char *xml, char *out,
                              size_t len, struct scuse_err *err)
{
    int r = check_path(xml, err);
    if (r < 0)
        return r;
    int n = snprintf(out, len, TCMU_SUBTYPE "/domain=%u.%u@%s", ctrl, unit, xml);
    if (n < 0 || (size_t)n >= len || n >= TCMU_CONFIG_MAX)
        return err_set(err, -ENAMETOOLONG, "dev_config for '%s' would be %d bytes, more than the "
                       "kernel's %d (a shorter --state-dir)", xml, n, TCMU_CONFIG_MAX - 1);
    return 0;
}

int tcmu_config_format(const char *fmt, const char *path, char *out, size_t len,
                       struct scuse_err *err)
{
    return tcmu_config_format_policy(fmt, NULL, path, out, len, err);
}

int tcmu_config_policy(const struct tcmu_image_cfg *img, struct scsi_lun_config *cfg,
                       struct scuse_err *err)
{
    cfg->policy_allow = false;
    cfg->n_policy = 0;
    int r = scsi_phys_exp(cfg->block_size, img->phys_size, &cfg->phys_exp, err);
    if (r < 0)
        return r;
    return img->policy[0] ? scsi_policy_parse(img->policy, cfg, err) : 0;
}
