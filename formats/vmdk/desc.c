/* VMDK descriptors: the text that names the extents and the chain.
 *
 *   # Disk DescriptorFile
 *   version=1
 *   CID=fffffffe
 *   parentCID=ffffffff
 *   createType="twoGbMaxExtentSparse"
 *   RW 4192256 SPARSE "disk-s001.vmdk"
 *   RW 2048 FLAT "disk-flat.vmdk" 128
 *   RDONLY 1024 ZERO
 *   ddb.adapterType = "lsilogic"
 *
 * Keys are looked up by name wherever they stand (QEMU finds CID with a
 * substring search, so it needs CID before parentCID; scuse does not).
 * Every line is either blank, a comment, key=value or an extent line;
 * anything else is refused, so a file that merely contains the words is
 * not taken for a disk. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmdk/vmdk.h"

static const char *const etype_names[] = {
    [VMDK_FLAT] = "FLAT", [VMDK_SPARSE] = "SPARSE", [VMDK_ZERO] = "ZERO",
    [VMDK_VMFS] = "VMFS", [VMDK_VMFSSPARSE] = "VMFSSPARSE", [VMDK_VMFSRAW] = "VMFSRAW",
    [VMDK_VMFSRDM] = "VMFSRDM", [VMDK_SESPARSE] = "SESPARSE",
};
static const char *const access_names[] = {
    [VMDK_RW] = "RW", [VMDK_RDONLY] = "RDONLY", [VMDK_NOACCESS] = "NOACCESS",
};

const char *vmdk_etype_name(enum vmdk_etype t) { return etype_names[t]; }
const char *vmdk_access_name(enum vmdk_access a) { return access_names[a]; }

void vmdk_desc_free(struct vmdk_desc *d)
{
    for (size_t i = 0; i < d->n_ext; i++)
        free(d->ext[i].file);
    free(d->ext);
    free(d->create_type);
    free(d->parent_hint);
    free(d->text);
    memset(d, 0, sizeof(*d));
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* A line's bytes [b, e), trimmed. */
struct span { const char *b, *e; };

static struct span trim(struct span s)
{
    while (s.b < s.e && is_space(*s.b))
        s.b++;
    while (s.e > s.b && is_space(s.e[-1]))
        s.e--;
    return s;
}

static bool span_is(struct span s, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(s.e - s.b) == n && memcmp(s.b, word, n) == 0;
}

static char *span_dup(struct span s)
{
    size_t n = (size_t)(s.e - s.b);
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s.b, n);
        p[n] = 0;
    }
    return p;
}

/* The next whitespace-separated token of *s (advancing it). */
static struct span token(struct span *s)
{
    *s = trim(*s);
    struct span t = { s->b, s->b };
    while (t.e < s->e && !is_space(*t.e))
        t.e++;
    s->b = t.e;
    return t;
}

static bool parse_u64(struct span t, uint64_t *out)
{
    if (t.b == t.e)
        return false;
    uint64_t v = 0;
    for (const char *p = t.b; p < t.e; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return true;
}

static bool parse_hex32(struct span t, uint32_t *out)
{
    if (t.b == t.e || t.e - t.b > 8)
        return false;
    uint32_t v = 0;
    for (const char *p = t.b; p < t.e; p++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            d = *p - 'A' + 10;
        else
            return false;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return true;
}

static int bad(struct scuse_err *err, const char *name, unsigned line, const char *what)
{
    return err_set(err, -EINVAL, "'%s': descriptor line %u: %s", name, line, what);
}

/* ACCESS SECTORS TYPE ["file" [OFFSET]] */
static int parse_extent(struct span s, unsigned line, const char *name, struct vmdk_desc *d,
                        struct scuse_err *err)
{
    struct vmdk_desc_extent e = { .line = line };
    struct span t = token(&s);
    if (span_is(t, "RW"))
        e.access = VMDK_RW;
    else if (span_is(t, "RDONLY"))
        e.access = VMDK_RDONLY;
    else
        e.access = VMDK_NOACCESS;
    if (!parse_u64(token(&s), &e.sectors))
        return bad(err, name, line, "extent size is not a number of sectors");
    if (e.sectors == 0)
        return bad(err, name, line, "extent of 0 sectors");
    if (e.sectors > VMDK_MAX_TOTAL_SECTORS - d->total_sectors)
        return bad(err, name, line, "extents add up to more than 64 PiB");
    t = token(&s);
    size_t i;
    for (i = 0; i < sizeof(etype_names) / sizeof(etype_names[0]); i++)
        if (span_is(t, etype_names[i]))
            break;
    if (i == sizeof(etype_names) / sizeof(etype_names[0]))
        return bad(err, name, line, "unknown extent type (not FLAT, SPARSE, ZERO, VMFS, "
                   "VMFSSPARSE, VMFSRAW, VMFSRDM or SESPARSE)");
    e.type = (enum vmdk_etype)i;
    s = trim(s);
    if (e.type != VMDK_ZERO) {
        if (s.b == s.e || *s.b != '"')
            return bad(err, name, line, "extent file name missing (it is written in double quotes)");
        const char *q = memchr(s.b + 1, '"', (size_t)(s.e - s.b - 1));
        if (!q)
            return bad(err, name, line, "extent file name has no closing quote");
        struct span f = { s.b + 1, q };
        if (f.b == f.e)
            return bad(err, name, line, "empty extent file name");
        if (memchr(f.b, '\0', (size_t)(f.e - f.b)))
            return bad(err, name, line, "NUL in the extent file name");
        s.b = q + 1;
        t = token(&s);
        if (t.b != t.e) {
            if (!parse_u64(t, &e.offset) || e.offset > VMDK_MAX_TOTAL_SECTORS)
                return bad(err, name, line, "extent offset is not a number of sectors");
        }
        /* VMFSRAW/VMFSRDM may carry more fields; they are refused at open. */
        if (trim(s).b != s.e && e.type != VMDK_VMFSRAW && e.type != VMDK_VMFSRDM)
            return bad(err, name, line, "unexpected text after the extent offset");
        e.file = span_dup(f);
        if (!e.file)
            return err_set(err, -ENOMEM, "out of memory");
    } else if (s.b != s.e) {
        return bad(err, name, line, "a ZERO extent names no file");
    }
    if (d->n_ext >= VMDK_MAX_EXTENTS) {
        free(e.file);
        return bad(err, name, line, "more than 4096 extents");
    }
    if ((d->n_ext & (d->n_ext - 1)) == 0) { /* grow at powers of two */
        size_t cap = d->n_ext ? d->n_ext * 2 : 4;
        struct vmdk_desc_extent *n = realloc(d->ext, cap * sizeof(*n));
        if (!n) {
            free(e.file);
            return err_set(err, -ENOMEM, "out of memory");
        }
        d->ext = n;
    }
    d->ext[d->n_ext++] = e;
    d->total_sectors += e.sectors;
    return 0;
}

static int set_str(char **dst, struct span v)
{
    free(*dst);
    *dst = span_dup(v);
    return *dst ? 0 : -ENOMEM;
}

static int parse_kv(struct span s, const char *eq, unsigned line, const char *name,
                    struct vmdk_desc *d, struct scuse_err *err)
{
    struct span k = trim((struct span){ s.b, eq });
    struct span v = trim((struct span){ eq + 1, s.e });
    if (v.e - v.b >= 2 && *v.b == '"' && v.e[-1] == '"') {
        v.b++;
        v.e--;
    }
    if (k.b == k.e)
        return bad(err, name, line, "key missing before '='");
    if (span_is(k, "version")) {
        uint64_t n;
        if (!parse_u64(v, &n) || n < 1 || n > 3)
            return bad(err, name, line, "version must be 1, 2 or 3");
        d->version = (int)n;
    } else if (span_is(k, "CID")) {
        if (!parse_hex32(v, &d->cid))
            return bad(err, name, line, "CID is not a 32-bit hex number");
        d->has_cid = true;
        d->cid_at = (size_t)(v.b - d->text);
        d->cid_len = (size_t)(v.e - v.b);
    } else if (span_is(k, "parentCID")) {
        if (!parse_hex32(v, &d->parent_cid))
            return bad(err, name, line, "parentCID is not a 32-bit hex number");
    } else if (span_is(k, "createType")) {
        if (set_str(&d->create_type, v) < 0)
            return err_set(err, -ENOMEM, "out of memory");
    } else if (span_is(k, "parentFileNameHint")) {
        if (v.b == v.e)
            return bad(err, name, line, "empty parentFileNameHint");
        if (set_str(&d->parent_hint, v) < 0)
            return err_set(err, -ENOMEM, "out of memory");
    }
    /* ddb.*, encoding and the rest stay in the text as they are. */
    return 0;
}

int vmdk_desc_parse(const char *text, size_t len, const char *name, struct vmdk_desc *d,
                    struct scuse_err *err)
{
    memset(d, 0, sizeof(*d));
    const char *nul = memchr(text, 0, len);
    if (nul)
        len = (size_t)(nul - text);
    if (len > VMDK_MAX_DESC_BYTES)
        return err_set(err, -EFBIG, "'%s': descriptor larger than 1 MiB", name);
    d->text = malloc(len + 1);
    if (!d->text)
        return err_set(err, -ENOMEM, "out of memory");
    memcpy(d->text, text, len);
    d->text[len] = 0;
    d->len = len;
    d->parent_cid = VMDK_CID_NONE;
    d->version = 1;

    int r = 0;
    unsigned line = 0;
    for (const char *p = d->text, *end = d->text + len; p < end && r == 0;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        struct span s = trim((struct span){ p, nl ? nl : end });
        p = nl ? nl + 1 : end;
        line++;
        if (s.b == s.e || *s.b == '#')
            continue;
        struct span first = s;
        struct span t = token(&first);
        if ((span_is(t, "RW") || span_is(t, "RDONLY") || span_is(t, "NOACCESS")) && first.b < s.e) {
            r = parse_extent(s, line, name, d, err);
            continue;
        }
        const char *eq = memchr(s.b, '=', (size_t)(s.e - s.b));
        if (eq)
            r = parse_kv(s, eq, line, name, d, err);
        else
            r = bad(err, name, line, "neither key=value nor an extent line");
    }
    if (r == 0 && !d->create_type)
        r = err_set(err, -EINVAL, "'%s': descriptor has no createType", name);
    if (r == 0 && !d->has_cid)
        r = err_set(err, -EINVAL, "'%s': descriptor has no CID", name);
    if (r < 0)
        vmdk_desc_free(d);
    return r;
}

char *vmdk_desc_with_cid(const struct vmdk_desc *d, uint32_t cid, size_t *out_len)
{
    char hex[9];
    snprintf(hex, sizeof(hex), "%08x", cid);
    size_t n = d->len - d->cid_len + 8;
    char *t = malloc(n + 1);
    if (!t)
        return NULL;
    memcpy(t, d->text, d->cid_at);
    memcpy(t + d->cid_at, hex, 8);
    memcpy(t + d->cid_at + 8, d->text + d->cid_at + d->cid_len, d->len - d->cid_at - d->cid_len);
    t[n] = 0;
    *out_len = n;
    return t;
}

/* Text whose lines carry the marker comment or a createType key. QEMU
 * rewrites a descriptor file in place (new CID) as its text, a NUL and
 * NUL padding to a whole sector; when the new text is shorter (CIDs are
 * written without leading zeros), up to 8 bytes of the old text's end
 * remain after the NUL. Beyond that, data after a NUL makes it binary. */
bool vmdk_desc_looks_like(const uint8_t *buf, size_t len)
{
    const uint8_t *nul = memchr(buf, 0, len);
    if (nul) {
        unsigned stray = 0;
        for (const uint8_t *p = nul; p < buf + len; p++)
            if (*p && ++stray > 16)
                return false;
        len = (size_t)(nul - buf);
    }
    static const char marker[] = "# Disk DescriptorFile";
    for (size_t i = 0; i < len;) {
        const uint8_t *nl = memchr(buf + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t j = i;
        while (j < end && (buf[j] == ' ' || buf[j] == '\t'))
            j++;
        if ((end - j >= sizeof(marker) - 1 && memcmp(buf + j, marker, sizeof(marker) - 1) == 0) ||
            (end - j >= 10 && memcmp(buf + j, "createType", 10) == 0))
            return true;
        i = end + 1;
    }
    return false;
}
