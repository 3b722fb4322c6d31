/* The table of format drivers: lookup by name or alias, probing, and the
 * format lists every message and help text takes from here. Adding a
 * format is one line in `drivers` below. */
#include <stdio.h>
#include <string.h>

#include "blk/driver.h"
#include "blk/format.h"

extern const struct blk_driver blk_driver_raw;
extern const struct blk_driver blk_driver_qcow2;
extern const struct blk_driver blk_driver_vmdk;
extern const struct blk_driver blk_driver_vpc;
extern const struct blk_driver blk_driver_vhdx;
extern const struct blk_driver blk_driver_qcow;
extern const struct blk_driver blk_driver_cue;
extern const struct blk_driver blk_driver_qed_refused;
extern const struct blk_driver blk_driver_vdi_refused;

static const struct blk_driver *const drivers[] = {
    &blk_driver_qcow2,
    &blk_driver_raw,
    &blk_driver_vmdk,
    &blk_driver_vpc,
    &blk_driver_vhdx,
    &blk_driver_qcow,
    &blk_driver_cue,
    &blk_driver_qed_refused,
    &blk_driver_vdi_refused,
};
#define N_DRIVERS (sizeof(drivers) / sizeof(drivers[0]))

static bool named(const struct blk_driver *d, const char *name)
{
    if (strcmp(d->name, name) == 0)
        return true;
    for (const char *const *a = d->aliases; a && *a; a++)
        if (strcmp(*a, name) == 0)
            return true;
    return false;
}

const struct blk_driver *blk_driver_find_in(const struct blk_driver *const *extra,
                                            const char *name)
{
    for (; extra && *extra; extra++)
        if (named(*extra, name))
            return *extra;
    for (size_t i = 0; i < N_DRIVERS; i++)
        if (named(drivers[i], name))
            return drivers[i];
    return NULL;
}

const struct blk_driver *blk_driver_find(const char *name)
{
    return blk_driver_find_in(NULL, name);
}

/* Highest score wins (the caller's formats first on a tie); raw answers 1
 * for anything, so it is only chosen when no format (served or only
 * recognised) claims the bytes. */
const struct blk_driver *blk_driver_probe_in(const struct blk_driver *const *extra,
                                             const struct blk_probe *p)
{
    const struct blk_driver *best = NULL;
    int best_score = 0;
    for (; extra && *extra; extra++) {
        int s = (*extra)->probe ? (*extra)->probe(p) : 0;
        if (s > best_score) {
            best_score = s;
            best = *extra;
        }
    }
    for (size_t i = 0; i < N_DRIVERS; i++) {
        int s = drivers[i]->probe ? drivers[i]->probe(p) : 0;
        if (s > best_score) {
            best_score = s;
            best = drivers[i];
        }
    }
    return best;
}

const struct blk_driver *blk_driver_probe(const struct blk_probe *p)
{
    return blk_driver_probe_in(NULL, p);
}

static bool matches(const struct blk_driver *d, enum blk_fmt_filter what)
{
    switch (what) {
    case BLK_FMT_OPEN: return d->open != NULL;
    case BLK_FMT_WRITE: return d->open && d->pwritev;
    case BLK_FMT_CREATE: return d->create != NULL;
    case BLK_FMT_CHECK: return d->check != NULL;
    case BLK_FMT_COMPRESS: return d->write_compressed != NULL;
    case BLK_FMT_BACKING: return d->open && (d->caps & BLK_DRV_BACKING);
    case BLK_FMT_KNOWN: return true;
    }
    return false;
}

bool blk_format_has(const char *fmt, enum blk_fmt_filter what)
{
    const struct blk_driver *d = blk_driver_find(fmt);
    return d && matches(d, what);
}

/* Sorted by name, so messages read the same whatever the table order. */
void blk_format_list(enum blk_fmt_filter what, char *buf, size_t len)
{
    const char *prev = "";
    size_t used = 0;
    if (len)
        buf[0] = '\0';
    for (;;) {
        const char *next = NULL;
        for (size_t i = 0; i < N_DRIVERS; i++) {
            const char *n = drivers[i]->name;
            if (matches(drivers[i], what) && strcmp(n, prev) > 0 && (!next || strcmp(n, next) < 0))
                next = n;
        }
        if (!next)
            return;
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", next);
        if (w < 0 || (size_t)w >= len - used)
            return;
        used += (size_t)w;
        prev = next;
    }
}

void blk_format_help(FILE *f)
{
    for (size_t i = 0; i < N_DRIVERS; i++) {
        const struct blk_driver *d = drivers[i];
        char names[64];
        int n = snprintf(names, sizeof(names), "%s", d->name);
        for (const char *const *a = d->aliases; a && *a && n > 0 && (size_t)n < sizeof(names); a++)
            n += snprintf(names + n, sizeof(names) - (size_t)n, " (%s)", *a);
        if (d->unsupported) {
            fprintf(f, "  %-14s %s: recognised and refused (not served yet)\n", names, d->description);
            continue;
        }
        fprintf(f, "  %-14s %s: read%s%s%s%s\n", names, d->description,
                d->pwritev ? ", write" : " only", d->create ? ", create" : "",
                d->check ? ", check" : "", d->write_compressed ? ", compress" : "");
    }
}
