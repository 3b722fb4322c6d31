#include "tcmu/config.h"

#include <errno.h>
#include <stdio.h>
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
    if (rest[0] != '/') {
        const char *at = strchr(rest, '@');
        if (!at)
            return err_set(err, -EINVAL, "dev_config '%s': expected " TCMU_SUBTYPE
                           "/<format>@<absolute path> or " TCMU_SUBTYPE "/<absolute path>",
                           config);
        int r = check_fmt(rest, (size_t)(at - rest), err);
        if (r < 0)
            return r;
        memcpy(out->fmt, rest, (size_t)(at - rest));
        path = at + 1;
    }
    int r = check_path(path, err);
    if (r < 0)
        return r;
    snprintf(out->path, sizeof(out->path), "%s", path);
    return 1;
}

int tcmu_config_format(const char *fmt, const char *path, char *out, size_t len,
                       struct scuse_err *err)
{
    int r = check_path(path, err);
    if (r < 0)
        return r;
    if (fmt && *fmt && (r = check_fmt(fmt, strlen(fmt), err)) < 0)
        return r;
    int n = fmt && *fmt ? snprintf(out, len, TCMU_SUBTYPE "/%s@%s", fmt, path)
                        : snprintf(out, len, TCMU_SUBTYPE "/%s", path);
    if (n < 0 || (size_t)n >= len || n >= TCMU_CONFIG_MAX)
        return err_set(err, -ENAMETOOLONG, "dev_config for '%s' would be %d bytes, more than "
                       "the kernel's %d", path, n, TCMU_CONFIG_MAX - 1);
    return 0;
}
