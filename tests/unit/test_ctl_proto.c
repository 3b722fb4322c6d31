/* The control protocol (core/ctl/ctl_proto.c) line by line against a
 * recording backend: every error shape (malformed JSON, not an object,
 * unknown members, unknown commands, missing, unexpected and mistyped
 * arguments, LUN range, backend errors and their classes), "id" echoed,
 * arguments handed to the backend as given, the greeting and events in
 * QMP's shapes. Answers are parsed back with jansson and compared by
 * member, never as text. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/ctl.h"

struct rec {
    char last[32];
    struct ctl_lun_add add;
    char file[256], format[64];
    uint16_t lun;
    bool force, quit;
    int fail;                       /* the errno the next call fails with */
};

static int rec_fail(struct rec *r, struct scuse_err *err)
{
    if (!r->fail)
        return 0;
    return err_set(err, -r->fail, "backend says no (%d)", r->fail);
}

static int b_query(void *o, json_t **ret, struct scuse_err *err)
{
    struct rec *r = o;
    strcpy(r->last, "query-luns");
    if (r->fail)
        return rec_fail(r, err);
    *ret = json_pack("[{s:i}]", "lun", 0);
    return 0;
}

static int b_add(void *o, const struct ctl_lun_add *a, json_t **ret, struct scuse_err *err)
{
    struct rec *r = o;
    strcpy(r->last, "lun-add");
    r->add = *a;
    snprintf(r->file, sizeof(r->file), "%s", a->file);
    snprintf(r->format, sizeof(r->format), "%s", a->format ? a->format : "(probe)");
    (void)ret;
    return rec_fail(r, err);
}

static int b_remove(void *o, uint16_t lun, struct scuse_err *err)
{
    struct rec *r = o;
    strcpy(r->last, "lun-remove");
    r->lun = lun;
    return rec_fail(r, err);
}

static int b_resize(void *o, uint16_t lun, json_t **ret, struct scuse_err *err)
{
    struct rec *r = o;
    strcpy(r->last, "lun-resize");
    r->lun = lun;
    if (r->fail)
        return rec_fail(r, err);
    *ret = json_pack("{s:b}", "changed", 1);
    return 0;
}

static int b_eject(void *o, uint16_t lun, bool force, struct scuse_err *err)
{
    struct rec *r = o;
    strcpy(r->last, "medium-eject");
    r->lun = lun;
    r->force = force;
    return rec_fail(r, err);
}

static int b_insert(void *o, uint16_t lun, const char *file, const char *format,
                    struct scuse_err *err)
{
    struct rec *r = o;
    strcpy(r->last, "medium-insert");
    r->lun = lun;
    snprintf(r->file, sizeof(r->file), "%s", file);
    snprintf(r->format, sizeof(r->format), "%s", format ? format : "(probe)");
    return rec_fail(r, err);
}

static void b_quit(void *o)
{
    struct rec *r = o;
    strcpy(r->last, "quit");
    r->quit = true;
}

static const struct ctl_backend full = {
    .query_luns = b_query, .lun_add = b_add, .lun_remove = b_remove, .lun_resize = b_resize,
    .medium_eject = b_eject, .medium_insert = b_insert, .quit = b_quit, .name = "test",
};

/* The answer to line, parsed; it must be one line ending in its newline. */
static json_t *ask_len(const struct ctl_backend *be, struct rec *r, const char *line, size_t len)
{
    char *out = ctl_handle(be, r, line, len);
    assert_non_null(out);
    size_t n = strlen(out);
    assert_true(n > 1);
    assert_int_equal(out[n - 1], '\n');
    assert_null(memchr(out, '\n', n - 1));
    json_error_t jerr;
    json_t *o = json_loads(out, 0, &jerr);
    if (!o)
        fail_msg("answer is not JSON: %s (%s)", out, jerr.text);
    free(out);
    assert_true(json_is_object(o));
    return o;
}

static json_t *ask(struct rec *r, const char *line)
{
    return ask_len(&full, r, line, strlen(line));
}

/* An error answer of this class whose desc contains want. */
static void want_error(json_t *o, const char *cls, const char *want)
{
    json_t *e = json_object_get(o, "error");
    if (!json_is_object(e))
        fail_msg("not an error: %s", json_dumps(o, 0));
    assert_int_equal(json_object_size(o), json_object_get(o, "id") ? 2 : 1);
    assert_int_equal(json_object_size(e), 2);
    assert_string_equal(json_string_value(json_object_get(e, "class")), cls);
    const char *desc = json_string_value(json_object_get(e, "desc"));
    assert_non_null(desc);
    if (!strstr(desc, want))
        fail_msg("desc '%s' does not say '%s'", desc, want);
    json_decref(o);
}

static json_t *want_return(json_t *o)
{
    json_t *ret = json_object_get(o, "return");
    if (!ret)
        fail_msg("not a return: %s", json_dumps(o, 0));
    json_incref(ret);
    json_decref(o);
    return ret;
}

static void test_malformed(void **state)
{
    (void)state;
    struct rec r = { 0 };
    want_error(ask(&r, "{\"execute\": "), "GenericError", "JSON parse error");
    want_error(ask(&r, "not json"), "GenericError", "JSON parse error");
    want_error(ask(&r, "{\"execute\": \"quit\"} {}"), "GenericError", "JSON parse error");
    want_error(ask(&r, "{\"execute\": \"quit\", \"execute\": \"quit\"}"), "GenericError",
               "JSON parse error");
    want_error(ask(&r, "[\"execute\", \"quit\"]"), "GenericError", "must be a JSON object");
    want_error(ask(&r, "\"quit\""), "GenericError", "must be a JSON object");
    want_error(ask(&r, "42"), "GenericError", "must be a JSON object");
    want_error(ask(&r, "{}"), "GenericError", "lacks member 'execute'");
    want_error(ask(&r, "{\"execute\": 3}"), "GenericError", "'execute' must be a string");
    want_error(ask(&r, "{\"execute\": \"quit\", \"extra\": 1}"), "GenericError",
               "member 'extra' is unexpected");
    want_error(ask(&r, "{\"execute\": \"lun-remove\", \"arguments\": [0]}"), "GenericError",
               "'arguments' must be an object");
    /* Bytes that are not UTF-8, a NUL inside the line, an escaped NUL. */
    want_error(ask_len(&full, &r, "{\"execute\": \"\xff\"}", 17), "GenericError",
               "JSON parse error");
    want_error(ask_len(&full, &r, "{\"execute\":\0\"quit\"}", 19), "GenericError",
               "JSON parse error");
    want_error(ask(&r, "{\"execute\": \"quit\\u0000\"}"), "GenericError", "JSON parse error");
    /* Nesting far too deep for anyone's good. */
    char deep[4200];
    memset(deep, '[', 4100);
    deep[4100] = '\0';
    want_error(ask(&r, deep), "GenericError", "JSON parse error");
    /* The parser quotes what it stopped at, bytes that are not UTF-8
     * included (found by fuzz_ctl): the answer stays valid JSON. */
    static const char cut[] = "{\"execute\": \"qui\xb2\x39\x95\x07\xc0\x60\x00\x00}";
    want_error(ask_len(&full, &r, cut, sizeof(cut) - 1), "GenericError", "JSON parse error");
    /* A member name cut at 200 bytes in the middle of a character. */
    char key[400];
    int n = snprintf(key, sizeof(key), "{\"execute\": \"quit\", \"");
    memset(key + n, 'k', 199);
    snprintf(key + n + 199, sizeof(key) - (size_t)n - 199, "\xc3\xa9\xc3\xa9\": 1}");
    want_error(ask(&r, key), "GenericError", "is unexpected");
    /* None of it reached the backend. */
    assert_string_equal(r.last, "");
}

static void test_unknown_command(void **state)
{
    (void)state;
    struct rec r = { 0 };
    want_error(ask(&r, "{\"execute\": \"system_reset\"}"), "CommandNotFound",
               "The command system_reset has not been found");
    want_error(ask(&r, "{\"execute\": \"\"}"), "CommandNotFound", "has not been found");
    want_error(ask(&r, "{\"execute\": \"QUIT\"}"), "CommandNotFound", "has not been found");
    assert_string_equal(r.last, "");
}

static void test_arguments(void **state)
{
    (void)state;
    struct rec r = { 0 };
    want_error(ask(&r, "{\"execute\": \"lun-remove\"}"), "GenericError",
               "Parameter 'lun' is missing");
    want_error(ask(&r, "{\"execute\": \"lun-remove\", \"arguments\": {}}"), "GenericError",
               "Parameter 'lun' is missing");
    want_error(ask(&r, "{\"execute\": \"lun-remove\", \"arguments\": {\"lun\": \"0\"}}"),
               "GenericError", "Invalid parameter type for 'lun', expected: integer");
    want_error(ask(&r, "{\"execute\": \"lun-remove\", \"arguments\": {\"lun\": 1.5}}"),
               "GenericError", "Invalid parameter type for 'lun', expected: integer");
    want_error(ask(&r, "{\"execute\": \"lun-remove\", \"arguments\": {\"lun\": null}}"),
               "GenericError", "Invalid parameter type for 'lun', expected: integer");
    want_error(ask(&r, "{\"execute\": \"lun-remove\", \"arguments\": {\"lun\": -1}}"),
               "GenericError", "expects a LUN from 0 to 16383");
    want_error(ask(&r, "{\"execute\": \"lun-remove\", \"arguments\": {\"lun\": 16384}}"),
               "GenericError", "expects a LUN from 0 to 16383");
    want_error(ask(&r, "{\"execute\": \"lun-remove\", \"arguments\": "
                       "{\"lun\": 99999999999999999999}}"),
               "GenericError", "JSON parse error");
    want_error(ask(&r, "{\"execute\": \"lun-remove\", \"arguments\": {\"lun\": 1, \"x\": 2}}"),
               "GenericError", "Parameter 'x' is unexpected");
    want_error(ask(&r, "{\"execute\": \"query-luns\", \"arguments\": {\"lun\": 1}}"),
               "GenericError", "Parameter 'lun' is unexpected");
    want_error(ask(&r, "{\"execute\": \"lun-add\", \"arguments\": {\"lun\": 1}}"),
               "GenericError", "Parameter 'file' is missing");
    want_error(ask(&r, "{\"execute\": \"lun-add\", \"arguments\": {\"lun\": 1, \"file\": 7}}"),
               "GenericError", "Invalid parameter type for 'file', expected: string");
    want_error(ask(&r, "{\"execute\": \"lun-add\", \"arguments\": {\"lun\": 1, \"file\": \"\"}}"),
               "GenericError", "Parameter 'file' expects a non-empty string");
    want_error(ask(&r, "{\"execute\": \"lun-add\", \"arguments\": {\"lun\": 1, \"file\": \"a\", "
                       "\"readonly\": \"yes\"}}"),
               "GenericError", "Invalid parameter type for 'readonly', expected: boolean");
    want_error(ask(&r, "{\"execute\": \"lun-add\", \"arguments\": {\"lun\": 1, \"file\": \"a\", "
                       "\"device\": \"tape\"}}"),
               "GenericError", "Parameter 'device' expects 'disk' or 'cdrom'");
    want_error(ask(&r, "{\"execute\": \"medium-eject\", \"arguments\": {\"lun\": 1, "
                       "\"force\": 1}}"),
               "GenericError", "Invalid parameter type for 'force', expected: boolean");
    want_error(ask(&r, "{\"execute\": \"medium-insert\", \"arguments\": {\"lun\": 1}}"),
               "GenericError", "Parameter 'file' is missing");
    assert_string_equal(r.last, "");
}

static void test_commands_reach_backend(void **state)
{
    (void)state;
    struct rec r = { 0 };
    json_t *ret = want_return(ask(&r, "{\"execute\": \"lun-add\", \"arguments\": {\"lun\": 16383, "
                                      "\"file\": \"/x/y.qcow2\", \"format\": \"qcow2\", "
                                      "\"device\": \"cdrom\", \"readonly\": true}}"));
    assert_true(json_is_object(ret) && json_object_size(ret) == 0);
    json_decref(ret);
    assert_string_equal(r.last, "lun-add");
    assert_int_equal(r.add.lun, 16383);
    assert_string_equal(r.file, "/x/y.qcow2");
    assert_string_equal(r.format, "qcow2");
    assert_int_equal(r.add.device, CTL_DEVICE_CDROM);
    assert_true(r.add.readonly);
    /* Defaults: format probed, a disk, read-write. */
    json_decref(want_return(ask(&r, "{\"execute\": \"lun-add\", \"arguments\": {\"lun\": 0, "
                                    "\"file\": \"a\"}}")));
    assert_string_equal(r.format, "(probe)");
    assert_int_equal(r.add.device, CTL_DEVICE_DISK);
    assert_false(r.add.readonly);

    ret = want_return(ask(&r, "{\"execute\": \"query-luns\"}"));
    assert_true(json_is_array(ret));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(ret, 0), "lun")), 0);
    json_decref(ret);
    json_decref(want_return(ask(&r, "{\"execute\": \"lun-remove\", \"arguments\": {\"lun\": 7}}")));
    assert_string_equal(r.last, "lun-remove");
    assert_int_equal(r.lun, 7);
    ret = want_return(ask(&r, "{\"arguments\": {\"lun\": 9}, \"execute\": \"lun-resize\"}"));
    assert_true(json_is_true(json_object_get(ret, "changed")));
    json_decref(ret);
    assert_int_equal(r.lun, 9);
    json_decref(want_return(ask(&r, "{\"execute\": \"medium-eject\", \"arguments\": {\"lun\": 2, "
                                    "\"force\": true}}")));
    assert_true(r.force);
    json_decref(want_return(ask(&r, "{\"execute\": \"medium-eject\", \"arguments\": "
                                    "{\"lun\": 2}}")));
    assert_false(r.force);
    json_decref(want_return(ask(&r, "{\"execute\": \"medium-insert\", \"arguments\": {\"lun\": 2, "
                                    "\"file\": \"b.iso\", \"format\": \"raw\"}}")));
    assert_string_equal(r.last, "medium-insert");
    assert_string_equal(r.file, "b.iso");
    assert_string_equal(r.format, "raw");
    /* QMP's handshake is accepted and changes nothing. */
    json_decref(want_return(ask(&r, "{\"execute\": \"qmp_capabilities\"}")));
    ret = want_return(ask(&r, "{\"execute\": \"query-commands\"}"));
    assert_true(json_array_size(ret) >= 9);
    json_decref(ret);
    assert_false(r.quit);
    json_decref(want_return(ask(&r, "{\"execute\": \"quit\"}")));
    assert_true(r.quit);
}

static void test_backend_errors(void **state)
{
    (void)state;
    struct rec r = { .fail = ENODEV };
    want_error(ask(&r, "{\"execute\": \"lun-remove\", \"arguments\": {\"lun\": 4}}"),
               "DeviceNotFound", "backend says no (19)");
    r.fail = EBUSY;
    want_error(ask(&r, "{\"execute\": \"medium-eject\", \"arguments\": {\"lun\": 4}}"),
               "GenericError", "backend says no (16)");
    want_error(ask(&r, "{\"execute\": \"query-luns\"}"), "GenericError", "backend says no");
    want_error(ask(&r, "{\"execute\": \"lun-resize\", \"arguments\": {\"lun\": 4}}"),
               "GenericError", "backend says no");
    /* A daemon that does not do a command says so. */
    struct ctl_backend part = { .query_luns = b_query, .name = "tcmu serve" };
    const char *l = "{\"execute\": \"lun-add\", \"arguments\": {\"lun\": 1, \"file\": \"a\"}}";
    want_error(ask_len(&part, &r, l, strlen(l)), "GenericError", "tcmu serve does not do lun-add");
}

static void test_id_echoed(void **state)
{
    (void)state;
    struct rec r = { 0 };
    json_t *o = ask(&r, "{\"execute\": \"quit\", \"id\": {\"n\": [1, \"two\"]}}");
    json_t *want = json_pack("{s:[i,s]}", "n", 1, "two");
    assert_true(json_equal(json_object_get(o, "id"), want));
    json_decref(want);
    json_decref(o);
    o = ask(&r, "{\"execute\": \"nope\", \"id\": 17}");
    assert_int_equal(json_integer_value(json_object_get(o, "id")), 17);
    want_error(o, "CommandNotFound", "nope");
    o = ask(&r, "{\"execute\": \"lun-remove\", \"id\": \"x\"}");
    assert_string_equal(json_string_value(json_object_get(o, "id")), "x");
    want_error(o, "GenericError", "missing");
}

static void test_greeting_event_oversize(void **state)
{
    (void)state;
    char *g = ctl_greeting("1.2.3");
    json_t *o = json_loads(g, 0, NULL);
    free(g);
    json_t *v = json_object_get(json_object_get(o, "QMP"), "version");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "qemu"), "major")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "qemu"), "micro")), 3);
    assert_string_equal(json_string_value(json_object_get(v, "package")), "scuse 1.2.3");
    assert_true(json_is_array(json_object_get(json_object_get(o, "QMP"), "capabilities")));
    json_decref(o);

    char *e = ctl_event_line("LUN_REMOVED", json_pack("{s:i}", "lun", 3));
    assert_int_equal(e[strlen(e) - 1], '\n');
    o = json_loads(e, 0, NULL);
    free(e);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "LUN_REMOVED");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "data"), "lun")), 3);
    json_t *ts = json_object_get(o, "timestamp");
    assert_true(json_integer_value(json_object_get(ts, "seconds")) > 1600000000);
    assert_true(json_is_integer(json_object_get(ts, "microseconds")));
    json_decref(o);
    e = ctl_event_line("MEDIUM_EJECTED", NULL);
    o = json_loads(e, 0, NULL);
    free(e);
    assert_true(json_is_object(json_object_get(o, "data")));
    json_decref(o);

    char *big = ctl_oversize_answer();
    o = json_loads(big, 0, NULL);
    free(big);
    want_error(o, "GenericError", "longer than 65536 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_unknown_command),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_commands_reach_backend),
        cmocka_unit_test(test_backend_errors),
        cmocka_unit_test(test_id_echoed),
        cmocka_unit_test(test_greeting_event_oversize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
