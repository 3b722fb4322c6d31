/* The control protocol: a request line in, its answer line out. QMP's
 * shapes: {"execute": NAME, "arguments": {...}, "id": ANY} answered by
 * {"return": ...} or {"error": {"class", "desc"}}, with the request's
 * "id" echoed. Every argument is checked (presence, type, range) before
 * the transport's callback runs, so a callback sees only sound values. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "ctl/ctl.h"

/* An answer under construction: the return value or an error. */
struct answer {
    json_t *ret;
    const char *cls;
    char desc[SCUSE_ERR_MAX + 64];
};

static __attribute__((format(printf, 3, 4))) void fail(struct answer *a, const char *cls,
                                                       const char *fmt, ...)
{
    va_list ap;
    a->cls = cls;
    va_start(ap, fmt);
    vsnprintf(a->desc, sizeof(a->desc), fmt, ap);
    va_end(ap);
}

/* An argument a command takes. */
enum arg_type { ARG_LUN, ARG_STRING, ARG_BOOL, ARG_DEVICE };
struct arg_spec {
    const char *name;
    enum arg_type type;
    bool required;
};

/* Checked arguments, by name. */
struct args {
    uint16_t lun;
    const char *file, *format;
    bool readonly, force;
    enum ctl_device device;
};

struct command {
    const char *name;
    struct arg_spec args[6];
    void (*run)(const struct ctl_backend *be, void *opaque, const struct args *in,
                struct answer *a);
};

static const char *type_name(enum arg_type t)
{
    switch (t) {
    case ARG_LUN: return "integer";
    case ARG_BOOL: return "boolean";
    default: return "string";
    }
}

static int check_arg(const struct arg_spec *s, json_t *v, struct args *out, struct answer *a)
{
    bool ok = s->type == ARG_LUN ? json_is_integer(v)
              : s->type == ARG_BOOL ? json_is_boolean(v) : json_is_string(v);
    if (!ok) {
        fail(a, "GenericError", "Invalid parameter type for '%s', expected: %s", s->name,
             type_name(s->type));
        return -1;
    }
    switch (s->type) {
    case ARG_LUN: {
        json_int_t n = json_integer_value(v);
        if (n < 0 || n > CTL_LUN_MAX) {
            fail(a, "GenericError", "Parameter '%s' expects a LUN from 0 to %d", s->name,
                 CTL_LUN_MAX);
            return -1;
        }
        out->lun = (uint16_t)n;
        return 0;
    }
    case ARG_BOOL:
        if (!strcmp(s->name, "readonly"))
            out->readonly = json_is_true(v);
        else
            out->force = json_is_true(v);
        return 0;
    case ARG_DEVICE: {
        const char *d = json_string_value(v);
        if (!strcmp(d, "disk")) {
            out->device = CTL_DEVICE_DISK;
        } else if (!strcmp(d, "cdrom")) {
            out->device = CTL_DEVICE_CDROM;
        } else {
            fail(a, "GenericError", "Parameter 'device' expects 'disk' or 'cdrom'");
            return -1;
        }
        return 0;
    }
    case ARG_STRING: {
        const char *str = json_string_value(v);
        if (!str[0] || json_string_length(v) != strlen(str)) {
            fail(a, "GenericError", "Parameter '%s' expects a non-empty string", s->name);
            return -1;
        }
        if (!strcmp(s->name, "file"))
            out->file = str;
        else
            out->format = str;
        return 0;
    }
    }
    return 0;
}

/* The arguments object against the command's list: every member known,
 * of its type; every required one there. */
static int check_args(const struct command *c, json_t *args, struct args *out,
                      struct answer *a)
{
    const char *key;
    json_t *v;
    json_object_foreach(args, key, v) {
        const struct arg_spec *s = NULL;
        for (const struct arg_spec *p = c->args; p->name; p++)
            if (!strcmp(p->name, key))
                s = p;
        if (!s) {
            fail(a, "GenericError", "Parameter '%.200s' is unexpected", key);
            return -1;
        }
        if (check_arg(s, v, out, a) < 0)
            return -1;
    }
    for (const struct arg_spec *p = c->args; p->name; p++) {
        if (p->required && !json_object_get(args, p->name)) {
            fail(a, "GenericError", "Parameter '%s' is missing", p->name);
            return -1;
        }
    }
    return 0;
}

/* A callback's result as the answer. */
static void result(struct answer *a, int r, const struct scuse_err *err, json_t *ret)
{
    if (r < 0) {
        json_decref(ret);
        const char *why = err->msg[0] ? err->msg : strerror(-r);
        fail(a, r == -ENODEV ? "DeviceNotFound" : "GenericError", "%s", why);
        return;
    }
    a->ret = ret ? ret : json_object();
}

static bool missing(const struct ctl_backend *be, const void *fn, const char *cmd,
                    struct answer *a)
{
    if (fn)
        return false;
    fail(a, "GenericError", "%s does not do %s", be->name ? be->name : "this daemon", cmd);
    return true;
}

static void run_query_luns(const struct ctl_backend *be, void *o, const struct args *in,
                           struct answer *a)
{
    (void)in;
    if (missing(be, (const void *)be->query_luns, "query-luns", a))
        return;
    struct scuse_err err = { 0 };
    json_t *ret = NULL;
    int r = be->query_luns(o, &ret, &err);
    result(a, r, &err, ret);
}

static void run_lun_add(const struct ctl_backend *be, void *o, const struct args *in,
                        struct answer *a)
{
    if (missing(be, (const void *)be->lun_add, "lun-add", a))
        return;
    struct ctl_lun_add add = { .lun = in->lun, .file = in->file, .format = in->format,
                               .device = in->device, .readonly = in->readonly };
    struct scuse_err err = { 0 };
    json_t *ret = NULL;
    int r = be->lun_add(o, &add, &ret, &err);
    result(a, r, &err, ret);
}

static void run_lun_remove(const struct ctl_backend *be, void *o, const struct args *in,
                           struct answer *a)
{
    if (missing(be, (const void *)be->lun_remove, "lun-remove", a))
        return;
    struct scuse_err err = { 0 };
    int r = be->lun_remove(o, in->lun, &err);
    result(a, r, &err, NULL);
}

static void run_lun_resize(const struct ctl_backend *be, void *o, const struct args *in,
                           struct answer *a)
{
    if (missing(be, (const void *)be->lun_resize, "lun-resize", a))
        return;
    struct scuse_err err = { 0 };
    json_t *ret = NULL;
    int r = be->lun_resize(o, in->lun, &ret, &err);
    result(a, r, &err, ret);
}

static void run_medium_eject(const struct ctl_backend *be, void *o, const struct args *in,
                             struct answer *a)
{
    if (missing(be, (const void *)be->medium_eject, "medium-eject", a))
        return;
    struct scuse_err err = { 0 };
    int r = be->medium_eject(o, in->lun, in->force, &err);
    result(a, r, &err, NULL);
}

static void run_medium_insert(const struct ctl_backend *be, void *o, const struct args *in,
                              struct answer *a)
{
    if (missing(be, (const void *)be->medium_insert, "medium-insert", a))
        return;
    struct scuse_err err = { 0 };
    int r = be->medium_insert(o, in->lun, in->file, in->format, &err);
    result(a, r, &err, NULL);
}

static void run_quit(const struct ctl_backend *be, void *o, const struct args *in,
                     struct answer *a)
{
    (void)in;
    if (missing(be, (const void *)be->quit, "quit", a))
        return;
    be->quit(o);
    a->ret = json_object();
}

/* QMP clients open with it; here it is accepted and changes nothing:
 * commands work without it, events reach every client (ctl(1)). */
static void run_capabilities(const struct ctl_backend *be, void *o, const struct args *in,
                             struct answer *a)
{
    (void)be;
    (void)o;
    (void)in;
    a->ret = json_object();
}

static void run_query_commands(const struct ctl_backend *be, void *o, const struct args *in,
                               struct answer *a);

static const struct command commands[] = {
    { "qmp_capabilities", { { NULL, 0, false } }, run_capabilities },
    { "query-commands", { { NULL, 0, false } }, run_query_commands },
    { "query-luns", { { NULL, 0, false } }, run_query_luns },
    { "lun-add",
      { { "lun", ARG_LUN, true },
        { "file", ARG_STRING, true },
        { "format", ARG_STRING, false },
        { "device", ARG_DEVICE, false },
        { "readonly", ARG_BOOL, false },
        { NULL, 0, false } },
      run_lun_add },
    { "lun-remove", { { "lun", ARG_LUN, true }, { NULL, 0, false } }, run_lun_remove },
    { "lun-resize", { { "lun", ARG_LUN, true }, { NULL, 0, false } }, run_lun_resize },
    { "medium-eject",
      { { "lun", ARG_LUN, true }, { "force", ARG_BOOL, false }, { NULL, 0, false } },
      run_medium_eject },
    { "medium-insert",
      { { "lun", ARG_LUN, true },
        { "file", ARG_STRING, true },
        { "format", ARG_STRING, false },
        { NULL, 0, false } },
      run_medium_insert },
    { "quit", { { NULL, 0, false } }, run_quit },
};

static void run_query_commands(const struct ctl_backend *be, void *o, const struct args *in,
                               struct answer *a)
{
    (void)be;
    (void)o;
    (void)in;
    a->ret = json_array();
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        json_array_append_new(a->ret, json_pack("{s:s}", "name", commands[i].name));
}

static char *dump_line(json_t *obj)
{
    char *s = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(obj);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    return line;
}

/* Whether s[0..] starts a well-formed UTF-8 sequence; its length, or 0. */
static unsigned utf8_seq(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    unsigned n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (!n)
        return 0;
    /* The second byte's range excludes overlongs, surrogates and > U+10FFFF. */
    unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (unsigned i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* A description quotes the request (a key, a command name, the parser's
 * "near '...'"), which may hold bytes that are not UTF-8, or a character
 * cut by a length limit: each such byte becomes '?', so the answer is
 * always valid JSON. */
void ctl_utf8_clean(char *text)
{
    unsigned char *s = (unsigned char *)text;
    while (*s) {
        unsigned n = utf8_seq(s);
        if (!n) {
            *s++ = '?';
            continue;
        }
        s += n;
    }
}

static char *answer_line(struct answer *a, json_t *id)
{
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    if (a->cls) {
        json_decref(a->ret);
        ctl_utf8_clean(a->desc);
        json_t *e = json_pack("{s:s,s:s}", "class", a->cls, "desc", a->desc);
        if (!e) {
            json_decref(obj);
            return NULL;
        }
        json_object_set_new(obj, "error", e);
    } else if (!a->ret || json_object_set_new(obj, "return", a->ret) < 0) {
        json_decref(obj);
        return NULL;
    }
    if (id)
        json_object_set(obj, "id", id);
    return dump_line(obj);
}

/* The request object's members: execute (a string), arguments (an
 * object), id (anything). */
static const struct command *check_request(json_t *req, json_t **args, struct answer *a)
{
    if (!json_is_object(req)) {
        fail(a, "GenericError", "QMP input must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(req, key, v) {
        if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id")) {
            fail(a, "GenericError", "QMP input member '%.200s' is unexpected", key);
            return NULL;
        }
    }
    json_t *exec = json_object_get(req, "execute");
    if (!exec) {
        fail(a, "GenericError", "QMP input lacks member 'execute'");
        return NULL;
    }
    if (!json_is_string(exec)) {
        fail(a, "GenericError", "QMP input member 'execute' must be a string");
        return NULL;
    }
    *args = json_object_get(req, "arguments");
    if (*args && !json_is_object(*args)) {
        fail(a, "GenericError", "QMP input member 'arguments' must be an object");
        return NULL;
    }
    const char *name = json_string_value(exec);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(commands[i].name, name) && json_string_length(exec) == strlen(name))
            return &commands[i];
    fail(a, "CommandNotFound", "The command %.200s has not been found", name);
    return NULL;
}

char *ctl_handle(const struct ctl_backend *be, void *opaque, const char *line, size_t len)
{
    struct answer a = { 0 };
    json_error_t jerr;
    json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!req) {
        fail(&a, "GenericError", "JSON parse error at column %d: %s", jerr.column, jerr.text);
        return answer_line(&a, NULL);
    }
    json_t *id = json_is_object(req) ? json_object_get(req, "id") : NULL;
    json_t *args = NULL;
    const struct command *c = check_request(req, &args, &a);
    struct args in = { .device = CTL_DEVICE_DISK };
    if (c && (!args || check_args(c, args, &in, &a) == 0)) {
        if (!args && c->args[0].name && c->args[0].required)
            fail(&a, "GenericError", "Parameter '%s' is missing", c->args[0].name);
        else
            c->run(be, opaque, &in, &a);
    }
    char *out = answer_line(&a, id);
    json_decref(req);
    return out;
}

char *ctl_oversize_answer(void)
{
    struct answer a = { 0 };
    fail(&a, "GenericError", "Request line longer than %d bytes: dropped", CTL_LINE_MAX);
    return answer_line(&a, NULL);
}

char *ctl_greeting(const char *version)
{
    int maj = 0, min = 0, mic = 0;
    if (version)
        sscanf(version, "%d.%d.%d", &maj, &min, &mic);
    char pkg[64];
    snprintf(pkg, sizeof(pkg), "scuse %s", version ? version : "");
    json_t *g = json_pack("{s:{s:{s:{s:i,s:i,s:i},s:s},s:[]}}", "QMP", "version", "qemu",
                          "major", maj, "minor", min, "micro", mic, "package", pkg,
                          "capabilities");
    return dump_line(g);
}

char *ctl_event_line(const char *name, json_t *data)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    json_t *ev = json_pack("{s:s,s:o,s:{s:I,s:I}}", "event", name, "data",
                           data ? data : json_object(), "timestamp", "seconds",
                           (json_int_t)tv.tv_sec, "microseconds", (json_int_t)tv.tv_usec);
    return dump_line(ev);
}
