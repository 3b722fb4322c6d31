/* The per-LUN command policy from text, as users write it on the command
 * line (`serve --lun N=IMG,deny=...`, `tcmu create --policy ...`) or in a
 * file:
 *     deny=UNMAP:WRITE_SAME_16      refuse these, serve the rest
 *     allow=0,12,25,28,9e/10        serve only these
 * An entry is a command named as the table names it, ignoring case and
 * every character but letters and digits (WRITE_SAME_16, write-same-16
 * and "WRITE SAME(16)" are one command), or an opcode in hexadecimal
 * (0x optional: sg_opcodes prints them bare), or opcode/service action
 * for the opcodes that have service actions (an opcode alone then covers
 * all of them). Entries are separated by ',', ':' or line breaks (a
 * file: one a line); '#' starts a comment that runs to the end of the
 * line. Only commands the table has are accepted: a typo is an error,
 * never a command silently left out of an allow list. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/scsi_int.h"

/* Names and opcodes of both device types' tables (disk, then cdrom): a
 * policy may name a command of either; the LUN applies what it has. */
static const struct scsi_op *any_op(unsigned i)
{
    return i < scsi_n_ops ? &scsi_ops[i] : &mmc_ops[i - scsi_n_ops];
}

#define POLICY_FILE_MAX (64 * 1024)
#define POLICY_MAX (sizeof(((struct scsi_lun_config *)0)->policy) / sizeof(uint32_t))

struct pparse {
    const char *p;
    unsigned line;                  /* of p, from 1 */
};

/* Between entries: ',', ':' or a line break. Spaces and tabs are not
 * separators: names may have them ("WRITE SAME(16)"). */
static bool is_sep(char c)
{
    return c == ',' || c == ':';
}

static bool ends_entry(char c)
{
    return !c || is_sep(c) || c == '\n' || c == '#';
}

/* Skip white space, line breaks and comments. */
static void skip_blank(struct pparse *s)
{
    for (;;) {
        if (*s->p == '#') {
            while (*s->p && *s->p != '\n')
                s->p++;
        } else if (*s->p == ' ' || *s->p == '\t' || *s->p == '\r' || *s->p == '\n') {
            if (*s->p == '\n')
                s->line++;
            s->p++;
        } else {
            return;
        }
    }
}

/* Letters and digits of s (n bytes), upper case, into out. */
static void fold(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++)
        if (isalnum((unsigned char)s[i]))
            out[o++] = (char)toupper((unsigned char)s[i]);
    out[o] = '\0';
}

/* A hexadecimal number of at most 8 digits, 0x optional, the whole of
 * s[0..n): true and *v, or false. */
static bool hex(const char *s, size_t n, unsigned long *v)
{
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        n -= 2;
    }
    if (n == 0 || n > 8)
        return false;
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return false;
        *v = *v << 4 | (unsigned long)(isdigit((unsigned char)s[i]) ? s[i] - '0'
                                       : toupper((unsigned char)s[i]) - 'A' + 10);
    }
    return true;
}

/* One entry, s[0..n), to opcode << 16 | service action (0xffff: all). */
static int entry(const char *s, size_t n, uint32_t *out, struct scuse_err *err)
{
    const char *slash = memchr(s, '/', n);
    size_t on = slash ? (size_t)(slash - s) : n;
    unsigned long op, sa = 0xffff;
    if (hex(s, on, &op)) {
        if (op > 0xff)
            return err_set(err, -EINVAL, "opcode '%.*s' is out of range (00..ff)", (int)on, s);
        if (slash) {
            size_t sn = n - on - 1;
            if (!hex(slash + 1, sn, &sa))
                return err_set(err, -EINVAL, "'%.*s': expected opcode/service action in hex",
                               (int)n, s);
            if (sa > 0x1f)
                return err_set(err, -EINVAL, "'%.*s': service action out of range (00..1f)",
                               (int)n, s);
            if (!scsi_opcode_has_sa((uint8_t)op))
                return err_set(err, -EINVAL, "'%.*s': opcode %02lx has no service actions",
                               (int)n, s, op);
        }
        for (unsigned i = 0; i < scsi_n_ops + mmc_n_ops; i++)
            if (any_op(i)->opcode == op && (sa == 0xffff || any_op(i)->sa == sa)) {
                *out = (uint32_t)op << 16 | (uint32_t)sa;
                return 0;
            }
        return err_set(err, -EINVAL, "'%.*s' is not a command scuse serves", (int)n, s);
    }
    if (slash)
        return err_set(err, -EINVAL, "'%.*s': a service action follows a hex opcode, not a name",
                       (int)n, s);
    char want[64], have[64];
    fold(s, n, want, sizeof(want));
    for (unsigned i = 0; want[0] && i < scsi_n_ops + mmc_n_ops; i++) {
        const struct scsi_op *o = any_op(i);
        fold(o->name, strlen(o->name), have, sizeof(have));
        if (strcmp(want, have) == 0) {
            *out = (uint32_t)o->opcode << 16 | o->sa;
            return 0;
        }
    }
    return err_set(err, -EINVAL, "unknown command '%.*s' (a name as scuse(1) lists them, or a "
                   "hex opcode)", (int)n, s);
}

static int bad_start(const char *w, struct scuse_err *err)
{
    int n = (int)strcspn(w, ",: \t\r\n#");
    if (n == 0)
        return err_set(err, -EINVAL, "a policy starts with allow= or deny=");
    return err_set(err, -EINVAL, "'%.*s': a policy starts with allow= or deny=", n, w);
}

/* The policy text at s->p; on error *s is where it went wrong. */
static int parse(struct pparse *s, struct scsi_lun_config *cfg, struct scuse_err *err)
{
    skip_blank(s);
    const char *w = s->p;
    while (isalpha((unsigned char)*s->p))
        s->p++;
    size_t wn = (size_t)(s->p - w);
    bool allow;
    if (wn == 5 && strncasecmp(w, "allow", 5) == 0)
        allow = true;
    else if (wn == 4 && strncasecmp(w, "deny", 4) == 0)
        allow = false;
    else
        return bad_start(w, err);
    if (*s->p == '=')
        s->p++;
    else if (*s->p && *s->p != ' ' && *s->p != '\t' && *s->p != '\r' && *s->p != '\n' &&
             *s->p != '#')
        return bad_start(w, err);

    uint32_t list[POLICY_MAX];
    unsigned n = 0;
    for (;;) {
        skip_blank(s);
        if (!*s->p) {
            if (n == 0)
                return err_set(err, -EINVAL, "%s= lists no commands", allow ? "allow" : "deny");
            break;
        }
        const char *e = s->p;
        while (!ends_entry(*s->p))
            s->p++;
        size_t len = (size_t)(s->p - e);
        while (len && (e[len - 1] == ' ' || e[len - 1] == '\t' || e[len - 1] == '\r'))
            len--;
        if (len == 0)
            return err_set(err, -EINVAL, "an empty entry before '%.20s'", e);
        uint32_t v = 0;
        int r = entry(e, len, &v, err);
        if (r < 0) {
            s->p = e;
            return r;
        }
        bool dup = false;
        for (unsigned i = 0; i < n; i++)
            dup |= list[i] == v;
        if (!dup) {
            if (n == POLICY_MAX)
                return err_set(err, -EINVAL, "more than %zu entries", POLICY_MAX);
            list[n++] = v;
        }
        skip_blank(s);
        if (is_sep(*s->p)) {
            s->p++;
            skip_blank(s);
            if (!*s->p || is_sep(*s->p))
                return err_set(err, -EINVAL, "an empty entry after '%.*s'", (int)len, e);
        }
    }
    cfg->policy_allow = allow;
    memcpy(cfg->policy, list, n * sizeof(list[0]));
    cfg->n_policy = n;
    return 0;
}

int scsi_policy_parse(const char *spec, struct scsi_lun_config *cfg, struct scuse_err *err)
{
    struct pparse s = { .p = spec, .line = 1 };
    return parse(&s, cfg, err);
}

int scsi_policy_load(const char *path, struct scsi_lun_config *cfg, struct scuse_err *err)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return err_set(err, -errno, "'%s': %s", path, strerror(errno));
    char *text = malloc(POLICY_FILE_MAX + 1);
    if (!text) {
        fclose(f);
        return err_set(err, -ENOMEM, "out of memory");
    }
    size_t n = fread(text, 1, POLICY_FILE_MAX + 1, f);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    int r = 0;
    if (rerr)
        r = err_set(err, -rerr, "'%s': %s", path, strerror(rerr));
    else if (n > POLICY_FILE_MAX)
        r = err_set(err, -EFBIG, "'%s': longer than %d bytes", path, POLICY_FILE_MAX);
    else if (memchr(text, '\0', n))
        r = err_set(err, -EINVAL, "'%s': not a text file", path);
    if (r == 0) {
        text[n] = '\0';
        struct pparse s = { .p = text, .line = 1 };
        r = parse(&s, cfg, err);
        if (r < 0)
            err_prefix(err, "'%s' line %u: ", path, s.line);
    }
    free(text);
    return r;
}

bool scsi_policy_set(const struct scsi_lun_config *cfg)
{
    return cfg->policy_allow || cfg->n_policy > 0;
}

int scsi_policy_format(const struct scsi_lun_config *cfg, char sep, char *out, size_t len)
{
    if (len)
        out[0] = '\0';
    if (!scsi_policy_set(cfg))
        return 0;
    char buf[8 + POLICY_MAX * 10];    /* "ffff/ffff" and a separator each, at most */
    size_t o = (size_t)snprintf(buf, sizeof(buf), "%s=", cfg->policy_allow ? "allow" : "deny");
    unsigned cnt = cfg->n_policy < POLICY_MAX ? cfg->n_policy : (unsigned)POLICY_MAX;
    for (unsigned i = 0; i < cnt; i++) {
        uint32_t e = cfg->policy[i];
        if (i)
            buf[o++] = sep;
        if ((e & 0xffff) == 0xffff)
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%02x", (unsigned)(e >> 16));
        else
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%02x/%02x", (unsigned)(e >> 16),
                                  (unsigned)(e & 0xffff));
    }
    if (len)
        snprintf(out, len, "%s", buf);
    return (int)o;
}
