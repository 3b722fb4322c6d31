/* CUE sheet text: FILE, TRACK, INDEX, PREGAP, POSTGAP and FLAGS are
 * read; REM, CATALOG, CDTEXTFILE, TITLE, PERFORMER, SONGWRITER and ISRC
 * are accepted and ignored; anything else is an error, as is a value out
 * of range, a keyword out of place, or a feature scuse does not serve
 * (audio files other than raw BINARY, CD+G and CD-i modes, several
 * sessions). Keywords in any case; values in quotes or bare. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "optical/cue.h"

struct cursor {
    const char *name;
    unsigned line;
    struct scuse_err *err;
};

#define FAIL(c, ...) cue_fail(c, __VA_ARGS__)

static __attribute__((format(printf, 2, 3))) int cue_fail(struct cursor *c, const char *fmt,
                                                           ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return err_set(c->err, -EINVAL, "'%s' line %u: %s", c->name, c->line, msg);
}

/* The next word of *p (quoted words keep their spaces), into w. A word
 * too long for w, or a quote left open, gives w = "\x01" (never a
 * printable word), which every caller refuses. false at the end of the
 * line. */
static bool word(const char **p, char *w, size_t wlen, bool *quoted)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s)
        return false;
    *quoted = *s == '"';
    if (*quoted)
        s++;
    size_t n = 0;
    bool bad = false;
    while (*s && (*quoted ? *s != '"' : *s != ' ' && *s != '\t')) {
        if (n + 1 < wlen)
            w[n++] = *s;
        else
            bad = true;
        s++;
    }
    if (*quoted) {
        if (*s == '"')
            s++;
        else
            bad = true;
    }
    w[n] = '\0';
    if (bad)
        strcpy(w, "\x01");
    *p = s;
    return true;
}

/* mm:ss:ff in frames (75 a second). */
static int msf(struct cursor *c, const char *field, const char *v, uint32_t *out)
{
    unsigned m, s, f;
    char tail;
    if (sscanf(v, "%3u:%2u:%2u%c", &m, &s, &f, &tail) != 3 || strlen(v) > 8)
        return FAIL(c, "%s: '%s' is not mm:ss:ff", field, v);
    if (s >= 60 || f >= 75)
        return FAIL(c, "%s: '%s': seconds must be below 60 and frames below 75", field, v);
    if (m > 99)
        return FAIL(c, "%s: '%s': more than 99 minutes", field, v);
    *out = (m * 60 + s) * 75 + f;
    return 0;
}

static int number(struct cursor *c, const char *field, const char *v, unsigned lo,
                  unsigned hi, unsigned *out)
{
    unsigned n;
    char tail;
    if (sscanf(v, "%3u%c", &n, &tail) != 1 || strlen(v) > 3 || v[0] == '+' || v[0] == '-')
        return FAIL(c, "%s: '%s' is not a number", field, v);
    if (n < lo || n > hi)
        return FAIL(c, "%s: %u is out of range (%u..%u)", field, n, lo, hi);
    *out = n;
    return 0;
}

static const struct {
    const char *name;
    enum optical_mode mode;
    uint32_t size, data_off;
} modes[] = {
    { "AUDIO", OPTICAL_AUDIO, 2352, 0 },
    { "MODE1/2048", OPTICAL_MODE1, 2048, 0 },
    { "MODE1/2352", OPTICAL_MODE1, 2352, 16 },
    { "MODE2/2352", OPTICAL_MODE2, 2352, 24 },
    { "MODE2/2336", OPTICAL_MODE2, 2336, 8 },
};

static const char *const unsupported_modes[] = {
    "CDG", "CDI/2336", "CDI/2352", "MODE2/2048", "MODE2/2324",
};

static const char *const ignored[] = {
    "REM", "CATALOG", "CDTEXTFILE", "TITLE", "PERFORMER", "SONGWRITER", "ISRC",
};

static int on_file(struct cursor *c, const char **p, struct cue_sheet *cs)
{
    char name[CUE_NAME_MAX], type[32];
    bool q;
    if (!word(p, name, sizeof(name), &q) || !name[0])
        return FAIL(c, "FILE: no file name");
    if (name[0] == '\x01')
        return FAIL(c, "FILE: the file name is longer than %d bytes or its quote is not "
                    "closed", CUE_NAME_MAX - 1);
    if (!word(p, type, sizeof(type), &q) || type[0] < ' ')
        return FAIL(c, "FILE: no file type (BINARY)");
    if (strcasecmp(type, "BINARY") != 0) {
        if (!strcasecmp(type, "MOTOROLA") || !strcasecmp(type, "WAVE") ||
            !strcasecmp(type, "AIFF") || !strcasecmp(type, "MP3"))
            return FAIL(c, "FILE: type %s is not supported (only BINARY: raw sectors)", type);
        return FAIL(c, "FILE: unknown file type '%s'", type);
    }
    char extra[8];
    if (word(p, extra, sizeof(extra), &q))
        return FAIL(c, "FILE: unexpected text after the type");
    if (cs->n_files == OPTICAL_MAX_FILES)
        return FAIL(c, "FILE: more than %d files", OPTICAL_MAX_FILES);
    snprintf(cs->file[cs->n_files], CUE_NAME_MAX, "%s", name);
    cs->file_line[cs->n_files] = c->line;
    cs->n_files++;
    return 0;
}

static int on_track(struct cursor *c, const char **p, struct cue_sheet *cs)
{
    char num[16], mode[32];
    bool q;
    if (cs->n_files == 0)
        return FAIL(c, "TRACK before any FILE");
    if (cs->n_tracks > 0 && cs->track[cs->n_tracks - 1].index1 < 0)
        return FAIL(c, "TRACK: track %u has no INDEX 01", cs->track[cs->n_tracks - 1].number);
    if (!word(p, num, sizeof(num), &q) || num[0] < ' ')
        return FAIL(c, "TRACK: no track number");
    unsigned n = 0;
    int r = number(c, "TRACK number", num, 1, 99, &n);
    if (r < 0)
        return r;
    unsigned want = cs->n_tracks ? cs->track[cs->n_tracks - 1].number + 1u : n;
    if (n != want)
        return FAIL(c, "TRACK number: %u, expected %u (tracks are numbered in order)", n, want);
    if (!word(p, mode, sizeof(mode), &q) || mode[0] < ' ')
        return FAIL(c, "TRACK: no track mode");
    struct cue_track *t = &cs->track[cs->n_tracks];
    memset(t, 0, sizeof(*t));
    unsigned i;
    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (!strcasecmp(mode, modes[i].name))
            break;
    if (i == sizeof(modes) / sizeof(modes[0])) {
        for (unsigned k = 0; k < sizeof(unsupported_modes) / sizeof(unsupported_modes[0]); k++)
            if (!strcasecmp(mode, unsupported_modes[k]))
                return FAIL(c, "TRACK mode: %s is not supported", mode);
        return FAIL(c, "TRACK mode: unknown mode '%s'", mode);
    }
    char extra[8];
    if (word(p, extra, sizeof(extra), &q))
        return FAIL(c, "TRACK: unexpected text after the mode");
    t->number = (uint8_t)n;
    t->mode = modes[i].mode;
    t->sector_size = modes[i].size;
    t->data_off = modes[i].data_off;
    t->file = (int)cs->n_files - 1;
    t->index0 = t->index1 = -1;
    t->line = c->line;
    cs->n_tracks++;
    return 0;
}

static struct cue_track *cur_track(struct cue_sheet *cs)
{
    return cs->n_tracks ? &cs->track[cs->n_tracks - 1] : NULL;
}

static int on_index(struct cursor *c, const char **p, struct cue_sheet *cs)
{
    char num[16], when[32];
    bool q;
    struct cue_track *t = cur_track(cs);
    if (!t)
        return FAIL(c, "INDEX outside a TRACK");
    if (t->file != (int)cs->n_files - 1)
        return FAIL(c, "INDEX: track %u's INDEX 01 must be in its own FILE", t->number);
    if (!word(p, num, sizeof(num), &q) || num[0] < ' ')
        return FAIL(c, "INDEX: no index number");
    unsigned n = 0;
    int r = number(c, "INDEX number", num, 0, 99, &n);
    if (r < 0)
        return r;
    if (!word(p, when, sizeof(when), &q) || when[0] < ' ')
        return FAIL(c, "INDEX %02u: no mm:ss:ff", n);
    char field[16];
    snprintf(field, sizeof(field), "INDEX %02u", n);
    uint32_t f;
    if ((r = msf(c, field, when, &f)) < 0)
        return r;
    char extra[8];
    if (word(p, extra, sizeof(extra), &q))
        return FAIL(c, "%s: unexpected text after the time", field);
    if (n == 0) {
        if (t->index0 >= 0 || t->index1 >= 0)
            return FAIL(c, "INDEX 00: must come once, before INDEX 01");
        t->index0 = (int32_t)f;
    } else if (n == 1) {
        if (t->index1 >= 0)
            return FAIL(c, "INDEX 01: given twice");
        if (t->index0 >= 0 && f < (uint32_t)t->index0)
            return FAIL(c, "INDEX 01: %s is before INDEX 00", when);
        t->index1 = (int32_t)f;
        t->index1_line = c->line;
    } else if (t->index1 < 0 || f < (uint32_t)t->index1) {
        return FAIL(c, "%s: must follow INDEX 01 and lie after it", field);
    }
    return 0;
}

static int on_gap(struct cursor *c, const char **p, struct cue_sheet *cs, bool post)
{
    const char *field = post ? "POSTGAP" : "PREGAP";
    char when[32];
    bool q;
    struct cue_track *t = cur_track(cs);
    if (!t)
        return FAIL(c, "%s outside a TRACK", field);
    if (!post && (t->index0 >= 0 || t->index1 >= 0))
        return FAIL(c, "PREGAP: must come before the track's INDEX lines");
    if (post && t->index1 < 0)
        return FAIL(c, "POSTGAP: must come after the track's INDEX 01");
    if ((post ? t->postgap : t->pregap) != 0)
        return FAIL(c, "%s: given twice", field);
    if (!word(p, when, sizeof(when), &q) || when[0] < ' ')
        return FAIL(c, "%s: no mm:ss:ff", field);
    uint32_t f;
    int r = msf(c, field, when, &f);
    if (r < 0)
        return r;
    if (post)
        t->postgap = f;
    else
        t->pregap = f;
    return 0;
}

static int on_flags(struct cursor *c, const char **p, struct cue_sheet *cs)
{
    struct cue_track *t = cur_track(cs);
    if (!t)
        return FAIL(c, "FLAGS outside a TRACK");
    char f[16];
    bool q;
    while (word(p, f, sizeof(f), &q)) {
        if (!strcasecmp(f, "PRE"))
            t->flags |= 0x01;
        else if (!strcasecmp(f, "DCP"))
            t->flags |= 0x02;
        else if (!strcasecmp(f, "4CH"))
            t->flags |= 0x08;
        else if (strcasecmp(f, "SCMS") != 0)
            return FAIL(c, "FLAGS: unknown flag '%s'", f[0] >= ' ' ? f : "?");
    }
    return 0;
}

static int on_rem(struct cursor *c, const char **p)
{
    char w[16];
    bool q;
    if (!word(p, w, sizeof(w), &q) || strcasecmp(w, "SESSION") != 0)
        return 0;
    if (!word(p, w, sizeof(w), &q))
        return 0;
    if (strcmp(w, "1") != 0 && strcmp(w, "01") != 0)
        return FAIL(c, "REM SESSION %s: CUE sheets of several sessions are not supported",
                    w[0] >= ' ' ? w : "?");
    return 0;
}

static int line(struct cursor *c, const char *s, struct cue_sheet *cs)
{
    char kw[32];
    bool q;
    const char *p = s;
    if (!word(&p, kw, sizeof(kw), &q))
        return 0;                   /* blank */
    if (kw[0] < ' ' || q)
        return FAIL(c, "expected a keyword");
    if (!strcasecmp(kw, "FILE"))
        return on_file(c, &p, cs);
    if (!strcasecmp(kw, "TRACK"))
        return on_track(c, &p, cs);
    if (!strcasecmp(kw, "INDEX"))
        return on_index(c, &p, cs);
    if (!strcasecmp(kw, "PREGAP"))
        return on_gap(c, &p, cs, false);
    if (!strcasecmp(kw, "POSTGAP"))
        return on_gap(c, &p, cs, true);
    if (!strcasecmp(kw, "FLAGS"))
        return on_flags(c, &p, cs);
    if (!strcasecmp(kw, "REM"))
        return on_rem(c, &p);
    for (unsigned i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
        if (!strcasecmp(kw, ignored[i]))
            return 0;
    return FAIL(c, "unknown keyword '%s'", kw);
}

#define LINE_MAX_BYTES 2048

int cue_parse(const char *text, size_t len, const char *name, struct cue_sheet *cs,
              struct scuse_err *err)
{
    struct cursor c = { name, 0, err };
    cs->n_files = cs->n_tracks = 0;   /* the arrays are filled as they are used */
    if (len > CUE_MAX_BYTES)
        return err_set(err, -EINVAL, "'%s': a CUE sheet of %zu bytes (at most %u)", name, len,
                       CUE_MAX_BYTES);
    size_t pos = 0;
    /* A UTF-8 byte order mark is allowed at the start. */
    if (len >= 3 && (uint8_t)text[0] == 0xef && (uint8_t)text[1] == 0xbb &&
        (uint8_t)text[2] == 0xbf)
        pos = 3;
    char buf[LINE_MAX_BYTES + 1];
    while (pos < len) {
        c.line++;
        size_t n = 0;
        while (pos < len && text[pos] != '\n') {
            char ch = text[pos++];
            if (ch == '\r')
                continue;
            if (ch == '\0' || (ch == 0x7f) || ((uint8_t)ch < 0x20 && ch != '\t'))
                return FAIL(&c, "a control character (%#x): not a CUE sheet",
                            (unsigned)(uint8_t)ch);
            if (n == LINE_MAX_BYTES)
                return FAIL(&c, "longer than %d bytes", LINE_MAX_BYTES);
            buf[n++] = ch;
        }
        pos++;                      /* the newline */
        buf[n] = '\0';
        int r = line(&c, buf, cs);
        if (r < 0)
            return r;
    }
    c.line++;
    if (cs->n_tracks == 0)
        return err_set(err, -EINVAL, "'%s': no TRACK", name);
    const struct cue_track *last = &cs->track[cs->n_tracks - 1];
    if (last->index1 < 0)
        return err_set(err, -EINVAL, "'%s' line %u: TRACK %02u has no INDEX 01", name,
                       last->line, last->number);
    return 0;
}
