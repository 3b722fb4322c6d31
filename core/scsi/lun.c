/* A LUN: its settings, its identity (serial, NAA designator, stable for
 * the same image path), and its state under its own lock (mode values,
 * unit attentions, started/stopped). */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/mmc.h"
#include "util/log.h"

void scsi_lun_config_default(struct scsi_lun_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->block_size = 512;
    snprintf(cfg->vendor, sizeof(cfg->vendor), "SCUSE");
    snprintf(cfg->product, sizeof(cfg->product), "scuse disk");
    snprintf(cfg->revision, sizeof(cfg->revision), "0001");
    cfg->write_cache = true;
    cfg->discard = true;
}

/* FNV-1a, 64 bits, from a given basis (chained for more bits). */
static uint64_t fnv1a(const char *s, uint64_t h)
{
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static int check_ascii(const char *what, const char *s, size_t max, struct scuse_err *err)
{
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return err_set(err, -EINVAL, "SCSI %s '%s' is longer than %zu characters", what, s, max);
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return err_set(err, -EINVAL, "SCSI %s has a character that is not printable ASCII",
                           what);
    return 0;
}

static int check_config(const struct scsi_lun_config *cfg, struct scuse_err *err)
{
    if (cfg->device != SCSI_DEVICE_DISK && cfg->device != SCSI_DEVICE_CDROM)
        return err_set(err, -EINVAL, "device type %d: not a disk nor a cdrom", (int)cfg->device);
    if (cfg->device == SCSI_DEVICE_DISK && cfg->block_size != 512 && cfg->block_size != 4096)
        return err_set(err, -EINVAL, "logical block size %u: must be 512 or 4096",
                       cfg->block_size);
    if (cfg->phys_exp > 15 || ((uint64_t)cfg->block_size << cfg->phys_exp) > (1u << 20))
        return err_set(err, -EINVAL, "physical block exponent %u: the physical block would "
                       "exceed 1 MiB", cfg->phys_exp);
    int r;
    if ((r = check_ascii("vendor", cfg->vendor, 8, err)) < 0 ||
        (r = check_ascii("product", cfg->product, 16, err)) < 0 ||
        (r = check_ascii("revision", cfg->revision, 4, err)) < 0 ||
        (r = check_ascii("serial", cfg->serial, sizeof(cfg->serial) - 1, err)) < 0)
        return r;
    if (cfg->n_policy > sizeof(cfg->policy) / sizeof(cfg->policy[0]))
        return err_set(err, -EINVAL, "command policy has %u entries (at most %zu)",
                       cfg->n_policy, sizeof(cfg->policy) / sizeof(cfg->policy[0]));
    return 0;
}

/* Serial and NAA designator: configured, or derived from the image's
 * resolved path so that the same image always shows the same identity. */
static void derive_identity(struct scsi_lun *lun)
{
    /* An empty drive has no image to name it: its LUN number does (two
     * scuse instances with empty drives share an identity: set serial=). */
    char empty[32];
    snprintf(empty, sizeof(empty), "scuse-empty-drive:%u", lun->id);
    char *real = lun->bs ? realpath(lun->bs->path, NULL) : NULL;
    const char *path = real ? real : lun->bs ? lun->bs->path : empty;
    uint64_t h1 = fnv1a(path, 0xcbf29ce484222325ull);
    uint64_t h2 = fnv1a(path, h1 ^ 0x5c05e5c05e5c05e5ull);
    free(real);

    if (lun->cfg.serial[0])
        snprintf(lun->serial, sizeof(lun->serial), "%s", lun->cfg.serial);
    else
        snprintf(lun->serial, sizeof(lun->serial), "%016llX", (unsigned long long)h1);

    uint64_t hi, lo = h2;
    if (lun->cfg.wwn && (lun->cfg.wwn >> 60) != 6) {
        /* A 64-bit WWN as libvirt gives it (NAA 5 usually): as is. */
        put_be64(lun->naa, lun->cfg.wwn);
        lun->naa_len = 8;
        return;
    }
    if (lun->cfg.wwn)
        hi = lun->cfg.wwn;          /* NAA 6 high half given, extension derived */
    else
        hi = 6ull << 60 | (uint64_t)SCUSE_NAA_COMPANY_ID << 36 | (h1 & 0xfffffffffull);
    put_be64(lun->naa, hi);
    put_be64(lun->naa + 8, lo);
    lun->naa_len = 16;
}

bool scsi_phys_size_ok(uint64_t v)
{
    return v >= 512 && v <= (1u << 20) && (v & (v - 1)) == 0;
}

int scsi_phys_exp(uint32_t block_size, uint64_t phys_size, uint8_t *exp, struct scuse_err *err)
{
    *exp = 0;
    if (!phys_size)
        return 0;
    if (!scsi_phys_size_ok(phys_size))
        return err_set(err, -EINVAL, "physical block size %llu: a power of two, 512 to 1048576",
                       (unsigned long long)phys_size);
    if (phys_size < block_size)
        return err_set(err, -EINVAL, "physical block size %llu is less than the block size %u",
                       (unsigned long long)phys_size, block_size);
    while (((uint64_t)block_size << *exp) < phys_size)
        (*exp)++;
    return 0;
}

/* The unit after power on or a reset: mode pages at their defaults (no
 * saved pages: write cache as configured, fixed sense, SWP off), started,
 * medium removal allowed. Atomic stores: the data path reads wce, d_sense
 * and swp without the lock. */
static void reset_state(struct scsi_lun *lun)
{
    __atomic_store_n(&lun->wce, lun->cfg.write_cache, __ATOMIC_RELAXED);
    __atomic_store_n(&lun->d_sense, false, __ATOMIC_RELAXED);
    __atomic_store_n(&lun->swp, false, __ATOMIC_RELAXED);
    __atomic_store_n(&lun->stopped, false, __ATOMIC_RELEASE);
    lun->prevent = false;
}

void scsi_lun_reset_state(struct scsi_lun *lun)
{
    pthread_mutex_lock(&lun->lock);
    reset_state(lun);
    pthread_mutex_unlock(&lun->lock);
}

int scsi_lun_create(const struct scsi_lun_config *cfg, struct blk_node *bs, uint16_t lun_id,
                    struct scsi_lun **out, struct scuse_err *err)
{
    *out = NULL;
    int r = check_config(cfg, err);
    if (r < 0)
        return r;
    if (lun_id > 0x3fff)
        return err_set(err, -EINVAL, "LUN %u: at most 16383 (flat space addressing)", lun_id);
    bool cd = cfg->device == SCSI_DEVICE_CDROM;
    if (!bs && !cd)
        return err_set(err, -EINVAL, "LUN %u: a disk needs an image", lun_id);
    uint32_t lbs = cd ? MMC_BLOCK_SIZE : cfg->block_size;
    if (bs && bs->size < lbs)
        return err_set(err, -EINVAL, "'%s': %llu bytes is less than one %u-byte block",
                       bs->path, (unsigned long long)bs->size, lbs);
    struct scsi_lun *lun = calloc(1, sizeof(*lun));
    if (!lun)
        return err_set(err, -ENOMEM, "out of memory for a LUN");
    lun->cfg = *cfg;
    if (cd && strcmp(cfg->product, "scuse disk") == 0)
        snprintf(lun->cfg.product, sizeof(lun->cfg.product), "scuse cdrom");  /* the default's */
    lun->ops = cd ? mmc_ops : scsi_ops;
    lun->n_ops = cd ? mmc_n_ops : scsi_n_ops;
    lun->bs = bs;
    lun->id = lun_id;
    lun->block_size = lbs;
    lun->shift = cd ? MMC_BLOCK_SHIFT : cfg->block_size == 4096 ? 12 : 9;
    lun->blocks = bs ? bs->size >> lun->shift : 0;
    if (bs && (bs->size & (lbs - 1)))
        log_warn("'%s': the last %llu bytes are not a whole %u-byte block and are not served",
                 bs->path, (unsigned long long)(bs->size & (lbs - 1)), lbs);
    /* A CD-ROM is read-only and has nothing to discard. */
    lun->read_only = cd || cfg->read_only || bs->read_only;
    lun->lbpme = !cd && cfg->discard;
    lun->lbprz = lun->lbpme && bs->discard_zeroes;
    lun->unmap_gran = bs && bs->cluster_size > lbs ? bs->cluster_size >> lun->shift : 1;
    lun->removable = cd;
    lun->ready = bs != NULL;
    if (cd && bs && !(lun->disc = scsi_medium_disc(bs, err))) {
        free(lun);
        return -ENOMEM;
    }
    derive_identity(lun);
    reset_state(lun);
    r = pthread_mutex_init(&lun->lock, NULL);
    if (r != 0) {
        free(lun->disc);
        free(lun);
        return err_set(err, -r, "cannot create the LUN lock");
    }
    r = pthread_cond_init(&lun->medium_idle, NULL);
    if (r != 0) {
        pthread_mutex_destroy(&lun->lock);
        free(lun->disc);
        free(lun);
        return err_set(err, -r, "cannot create the LUN's medium condition");
    }
    r = pthread_mutex_init(&lun->sanitize_lock, NULL);
    if (r == 0 && (r = pthread_cond_init(&lun->sanitize_cv, NULL)) != 0)
        pthread_mutex_destroy(&lun->sanitize_lock);
    if (r != 0) {
        pthread_cond_destroy(&lun->medium_idle);
        pthread_mutex_destroy(&lun->lock);
        free(lun->disc);
        free(lun);
        return err_set(err, -r, "cannot create the LUN's sanitize lock");
    }
    *out = lun;
    return 0;
}

void scsi_lun_destroy(struct scsi_lun *lun)
{
    if (!lun)
        return;
    sbc_sanitize_wait(lun);         /* a SANITIZE still running (IMMED, or detached) */
    pthread_cond_destroy(&lun->sanitize_cv);
    pthread_mutex_destroy(&lun->sanitize_lock);
    free(lun->disc);
    pthread_cond_destroy(&lun->medium_idle);
    pthread_mutex_destroy(&lun->lock);
    free(lun);
}

uint64_t scsi_lun_blocks(const struct scsi_lun *lun)
{
    return __atomic_load_n(&lun->blocks, __ATOMIC_ACQUIRE);
}
uint32_t scsi_lun_block_size(const struct scsi_lun *lun) { return lun->block_size; }
struct scsi_disp_lun **scsi_lun_disp_slot(struct scsi_lun *lun) { return &lun->disp; }

bool scsi_lun_write_cache(struct scsi_lun *lun)
{
    return __atomic_load_n(&lun->wce, __ATOMIC_RELAXED);
}

void scsi_lun_raise_ua(struct scsi_lun *lun, enum scsi_ua ua)
{
    pthread_mutex_lock(&lun->lock);
    if (ua == SCSI_UA_POWER_ON) {
        /* A reset supersedes the others and returns the mode pages and
         * the unit to their power-on state. */
        __atomic_store_n(&lun->ua, 1u << SCSI_UA_POWER_ON, __ATOMIC_RELEASE);
        reset_state(lun);
    } else {
        __atomic_or_fetch(&lun->ua, 1u << ua, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&lun->lock);
}

/* Highest priority first: power on/reset, then the others in enum order. */
bool scsi_lun_take_ua(struct scsi_lun *lun, struct scsi_sense *s)
{
    static const uint16_t asc[] = {
        [SCSI_UA_POWER_ON] = ASC_POWER_ON_RESET,
        [SCSI_UA_CAPACITY_CHANGED] = ASC_CAPACITY_DATA_CHANGED,
        [SCSI_UA_MODE_CHANGED] = ASC_MODE_PARAMETERS_CHANGED,
        [SCSI_UA_LUNS_CHANGED] = ASC_REPORTED_LUNS_CHANGED,
        [SCSI_UA_NEXUS_LOSS] = ASC_I_T_NEXUS_LOSS,
        [SCSI_UA_MEDIUM_CHANGED] = ASC_MEDIUM_MAY_HAVE_CHANGED,
        [SCSI_UA_NO_MEDIUM] = ASC_MEDIUM_NOT_PRESENT,
    };
    /* Nothing pending is the common case: no lock on the data path. */
    if (__atomic_load_n(&lun->ua, __ATOMIC_ACQUIRE) == 0)
        return false;
    bool have = false;
    pthread_mutex_lock(&lun->lock);
    for (unsigned i = 0; i < sizeof(asc) / sizeof(asc[0]); i++) {
        if (lun->ua & (1u << i)) {
            __atomic_and_fetch(&lun->ua, ~(1u << i), __ATOMIC_RELEASE);
            memset(s, 0, sizeof(*s));
            s->key = SK_UNIT_ATTENTION;
            s->asc = asc[i];
            have = true;
            break;
        }
    }
    pthread_mutex_unlock(&lun->lock);
    return have;
}
