/* libFuzzer target: the domain XML parser (vm/domain) on arbitrary bytes.
 *
 * Each input is parsed as a domain file. Besides ASan/UBSan findings and
 * leaks, the target aborts on broken promises:
 *   - a failure without a message, a message on more than one line, or
 *     one that does not start with the file's name;
 *   - a success whose disks break the parser's rules: a disk on a
 *     controller scuse does not have, two disks on one controller and
 *     unit, a unit above 16383, a block size other than 512 or 4096, a
 *     chain deeper than DOM_MAX_CHAIN or a link without a file or format,
 *     a format name the table does not give, per-disk counts that do not
 *     add up to the controllers';
 *   - a domain that parses but whose conversion (either transport, from
 *     the byte 0 of the input) does not parse back, lists other disks,
 *     or changes when converted again (the conversion is idempotent).
 * tests/fuzz/seeds_domain.py writes the seeds. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain/domain.h"

static void die(const char *what, const char *detail)
{
    fprintf(stdout, "fuzz_domain: %s: %s\n", what, detail);
    fflush(stdout);
    abort();
}

static void check_disks(const struct domain *d)
{
    unsigned per_ctrl = 0;
    for (unsigned c = 0; c < d->n_ctrl; c++)
        per_ctrl += d->ctrl[c].n_disks;
    if (per_ctrl != d->n_disks)
        die("controller disk counts do not add up", d->name);
    for (unsigned i = 0; i < d->n_disks; i++) {
        const struct dom_disk *k = &d->disks[i];
        if (!dom_controller((struct domain *)d, k->controller))
            die("a disk on a controller that is not scuse's", k->dev);
        if (k->unit > 16383 || k->bus || k->target)
            die("an address scuse does not serve", k->dev);
        if (k->cfg.block_size != 512 && k->cfg.block_size != 4096)
            die("block size", k->dev);
        if ((!k->source && k->cfg.device != SCSI_DEVICE_CDROM) || !k->fmt || !k->libvirt_fmt ||
            strcmp(dom_format_from_libvirt(k->libvirt_fmt), k->fmt) != 0)
            die("source or format", k->dev);
        if (k->n_chain > DOM_MAX_CHAIN || (k->n_chain && !k->chain_given))
            die("chain", k->dev);
        for (unsigned j = 0; j < k->n_chain; j++)
            if (!k->chain[j].file || !k->chain[j].fmt)
                die("chain link", k->dev);
        for (unsigned j = 0; j < i; j++)
            if (d->disks[j].controller == k->controller && d->disks[j].unit == k->unit)
                die("two disks on one controller and unit", k->dev);
    }
}

/* Convert, parse the result, convert it again: the same bytes. */
static void check_convert(struct domain *d, enum dom_transport t)
{
    char *out = NULL, *again = NULL;
    size_t len, len2;
    struct scuse_err err = { 0 };
    unsigned n_disks = d->n_disks;
    if (dom_convert(d, t, "/run/s", -1, NULL, &out, &len, &err) < 0)
        return;                     /* a socket path too long: refused, fine */
    struct domain *d2 = NULL;
    err_clear(&err);
    if (dom_parse(out, len, "fuzz.xml", &d2, &err) < 0)
        die("the conversion does not parse back", err.msg);
    if (d2->n_disks != n_disks)
        die("the conversion lists other disks", d2->name);
    check_disks(d2);
    if (dom_convert(d2, t, "/run/s", -1, NULL, &again, &len2, &err) < 0)
        die("the conversion cannot be converted again", err.msg);
    if (len2 != len || memcmp(out, again, len) != 0)
        die("converting the conversion again changes it", d2->name);
    free(out);
    free(again);
    dom_free(d2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct domain *d = NULL;
    struct scuse_err err = { 0 };
    int r = dom_parse((const char *)data, size, "fuzz.xml", &d, &err);
    if (r < 0) {
        if (d)
            die("failure with a domain", err.msg);
        if (!err.msg[0])
            die("failure without a message", "");
        if (strchr(err.msg, '\n'))
            die("message on several lines", err.msg);
        if (strncmp(err.msg, "fuzz.xml", 8) != 0)
            die("message does not name the file", err.msg);
        return 0;
    }
    if (!d || !d->name)
        die("success without a domain", "");
    check_disks(d);
    check_convert(d, size && (data[0] & 1) ? DOM_VHOST_SCSI : DOM_VHOST_USER_SCSI);
    dom_free(d);
    return 0;
}
