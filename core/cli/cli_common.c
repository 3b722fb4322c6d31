#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int cli_parse_size(const char *s, uint64_t *out)
{
    /* Decimal (or 0x hex) with an optional fraction and a binary suffix,
     * as qemu-img reads sizes: "010" is ten, "1.5k" is 1536. */
    if (!s || !*s || strchr(s, '-') || isspace((unsigned char)*s))
        return -EINVAL;
    char *end;
    errno = 0;
    bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
    unsigned long long whole = strtoull(s, &end, hex ? 16 : 10);
    if (errno || end == s)
        return -EINVAL;
    double frac = 0;
    if (*end == '.' && !hex) {
        char *fend;
        frac = strtod(end, &fend);
        if (fend == end + 1)
            return -EINVAL;
        end = fend;
    }
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'b': case 'B': end++; break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    case 'p': case 'P': shift = 50; end++; break;
    case 'e': case 'E': shift = 60; end++; break;
    default: return -EINVAL;
    }
    if (*end)
        return -EINVAL;
    if (shift && whole > (UINT64_MAX >> shift))
        return -ERANGE;
    uint64_t v = (uint64_t)whole << shift;
    if (frac > 0) {
        double extra = frac * (double)(1ull << shift);
        if (extra != (double)(uint64_t)extra)
            return -EINVAL; /* not a whole number of bytes */
        if ((uint64_t)extra > UINT64_MAX - v)
            return -ERANGE;
        v += (uint64_t)extra;
    }
    *out = v;
    return 0;
}

void cli_human_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    double v = (double)bytes;
    int u = 0;
    /* Like qemu-img: switch units from 1000 on ("0.977 MiB"). */
    while (v >= 1000.0 && u < 6) {
        v /= 1024.0;
        u++;
    }
    /* Three significant digits, as qemu-img prints them. */
    snprintf(buf, len, "%0.3g %s", v, units[u]);
}

int cli_fail(int code, const char *cmd, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (code == EXIT_USAGE)
        fprintf(stderr, "scuse %s: %s (see 'scuse %s --help')\n", cmd, msg, cmd);
    else
        fprintf(stderr, "scuse %s: %s\n", cmd, msg);
    return code;
}

int cli_open(const char *cmd, const char *file, const char *fmt, unsigned flags,
             const struct blk_opts *opts, struct blk_node **out)
{
    struct scuse_err err = { 0 };
    int r = blk_open(file, fmt, flags, opts, out, &err);
    if (r < 0) {
        cli_fail(EXIT_IMAGE, cmd, "%s", err.msg[0] ? err.msg : strerror(-r));
        return r;
    }
    return 0;
}

const char *cli_reason(const struct scuse_err *err, int r)
{
    return err && err->msg[0] ? err->msg : strerror(-r);
}

int cli_split_kv(const char *cmd, char *s, struct blk_kv *kv)
{
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq)
            return cli_fail(EXIT_USAGE, cmd, "option '%s' needs a value (OPT=VAL)", t);
        *eq = '\0';
        if (kv->n == BLK_MAX_KV)
            return cli_fail(EXIT_USAGE, cmd, "too many options (at most %d)", BLK_MAX_KV);
        kv->kv[kv->n].key = t;
        kv->kv[kv->n].val = eq + 1;
        kv->n++;
    }
    return EXIT_OK;
}

void cli_kv_remove(struct blk_kv *kv, int i)
{
    memmove(&kv->kv[i], &kv->kv[i + 1], (size_t)(kv->n - i - 1) * sizeof(kv->kv[0]));
    kv->n--;
}

int cli_output_format(const char *arg)
{
    if (strcmp(arg, "human") == 0)
        return 0;
    if (strcmp(arg, "json") == 0)
        return 1;
    return -1;
}

int cli_image_opt(const char *cmd, int c, struct cli_image_opts *o, void (*usage)(FILE *))
{
    switch (c) {
    case 'f': o->fmt = optarg; return CLI_OPT_NEXT;
    case 'o':
        o->json = cli_output_format(optarg);
        if (o->json < 0)
            return cli_fail(EXIT_USAGE, cmd, "--output must be 'human' or 'json', not '%s'", optarg);
        return CLI_OPT_NEXT;
    case 'U': o->share = true; return CLI_OPT_NEXT;
    case 'h': usage(stdout); return EXIT_OK;
    default: usage(stderr); return EXIT_USAGE;
    }
}

int cli_parse_group(const char *s, gid_t *out)
{
    char *end;
    unsigned long g = strtoul(s, &end, 10);
    struct group *gr = *end ? getgrnam(s) : NULL;
    if (!*s || (*end && !gr))
        return -ENOENT;
    *out = gr ? gr->gr_gid : (gid_t)g;
    return 0;
}
