#include "util/json.h"

#include <inttypes.h>

void json_init(struct json_out *j, FILE *f, bool compact)
{
    j->f = f;
    j->depth = 0;
    j->first[0] = true;
    j->compact = compact;
}

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* Separator, newline and indent before a member, then its key. */
static void member(struct json_out *j, const char *key)
{
    if (j->depth > 0) {
        if (!j->first[j->depth])
            fputc(',', j->f);
        if (j->compact) {
            fputc(' ', j->f);
        } else {
            fputc('\n', j->f);
            for (int i = 0; i < j->depth; i++)
                fputs("    ", j->f);
        }
        j->first[j->depth] = false;
    }
    if (key) {
        put_string(j->f, key);
        fputs(": ", j->f);
    }
}

static void open_(struct json_out *j, const char *key, char c)
{
    member(j, key);
    fputc(c, j->f);
    if (j->depth + 1 < JSON_MAX_DEPTH)
        j->depth++;
    j->first[j->depth] = true;
}

static void close_(struct json_out *j, char c)
{
    bool empty = j->first[j->depth];
    if (j->depth > 0)
        j->depth--;
    if (!empty) {
        if (!j->compact) {
            fputc('\n', j->f);
            for (int i = 0; i < j->depth; i++)
                fputs("    ", j->f);
        }
    }
    fputc(c, j->f);
}

void json_obj_begin(struct json_out *j, const char *key) { open_(j, key, '{'); }
void json_obj_end(struct json_out *j) { close_(j, '}'); }
void json_arr_begin(struct json_out *j, const char *key) { open_(j, key, '['); }
void json_arr_end(struct json_out *j) { close_(j, ']'); }

void json_str(struct json_out *j, const char *key, const char *val)
{
    member(j, key);
    put_string(j->f, val);
}

void json_int(struct json_out *j, const char *key, int64_t val)
{
    member(j, key);
    fprintf(j->f, "%" PRId64, val);
}

void json_uint(struct json_out *j, const char *key, uint64_t val)
{
    member(j, key);
    fprintf(j->f, "%" PRIu64, val);
}

void json_bool(struct json_out *j, const char *key, bool val)
{
    member(j, key);
    fputs(val ? "true" : "false", j->f);
}

void json_end(struct json_out *j) { fputc('\n', j->f); }
