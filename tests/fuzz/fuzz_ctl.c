/* libFuzzer target: the control protocol (core/ctl/ctl_proto.c) on
 * arbitrary bytes. The input is cut at newlines as the server cuts a
 * client's stream, and each piece is one request. Besides ASan/UBSan
 * findings and leaks, the target aborts on broken promises:
 *   - an answer that is not one line of JSON ending in a newline, not an
 *     object, or that has other members than one of "return"/"error"
 *     and an optional "id";
 *   - an error without a string "class" of QMP's (GenericError,
 *     CommandNotFound, DeviceNotFound) and a non-empty "desc";
 *   - an "id" that is not the request's own;
 *   - a backend call with arguments the protocol promised to check: a
 *     LUN above 16383, an empty file or format name, a device other than
 *     disk or cdrom.
 * The backend fails every other call (by the input's bytes) so both
 * answer shapes are checked. tests/fuzz/seeds_ctl.py writes the seeds. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

static void die(const char *what, const char *detail)
{
    fprintf(stdout, "fuzz_ctl: %s: %s\n", what, detail);
    fflush(stdout);
    abort();
}

static unsigned calls;

static int verdict(struct scuse_err *err)
{
    calls++;
    return (calls & 1) ? err_set(err, calls & 2 ? -ENODEV : -EBUSY, "no (%u)", calls) : 0;
}

static void check_lun(uint16_t lun)
{
    if (lun > CTL_LUN_MAX)
        die("a LUN out of range reached the backend", "");
}

static void check_name(const char *s, const char *what)
{
    if (s && !s[0])
        die("an empty name reached the backend", what);
}

static int b_query(void *o, json_t **ret, struct scuse_err *err)
{
    (void)o;
    if (verdict(err) < 0)
        return err->code;
    *ret = json_array();
    return 0;
}

static int b_add(void *o, const struct ctl_lun_add *a, json_t **ret, struct scuse_err *err)
{
    (void)o;
    (void)ret;
    check_lun(a->lun);
    if (!a->file)
        die("lun-add without a file reached the backend", "");
    check_name(a->file, "file");
    check_name(a->format, "format");
    if (a->device != CTL_DEVICE_DISK && a->device != CTL_DEVICE_CDROM)
        die("an unknown device reached the backend", "");
    return verdict(err);
}

static int b_remove(void *o, uint16_t lun, struct scuse_err *err)
{
    (void)o;
    check_lun(lun);
    return verdict(err);
}

static int b_resize(void *o, uint16_t lun, json_t **ret, struct scuse_err *err)
{
    (void)o;
    check_lun(lun);
    if (verdict(err) < 0)
        return err->code;
    *ret = json_pack("{s:b}", "changed", 0);
    return 0;
}

static int b_eject(void *o, uint16_t lun, bool force, struct scuse_err *err)
{
    (void)o;
    (void)force;
    check_lun(lun);
    return verdict(err);
}

static int b_insert(void *o, uint16_t lun, const char *file, const char *format,
                    struct scuse_err *err)
{
    (void)o;
    check_lun(lun);
    if (!file)
        die("medium-insert without a file reached the backend", "");
    check_name(file, "file");
    check_name(format, "format");
    return verdict(err);
}

static void b_quit(void *o) { (void)o; }

static const struct ctl_backend be = {
    .query_luns = b_query, .lun_add = b_add, .lun_remove = b_remove, .lun_resize = b_resize,
    .medium_eject = b_eject, .medium_insert = b_insert, .quit = b_quit, .name = "fuzz",
};

static void check_answer(const char *req, size_t len, const char *ans)
{
    size_t n = strlen(ans);
    if (n < 2 || ans[n - 1] != '\n' || memchr(ans, '\n', n - 1))
        die("the answer is not one line", ans);
    json_error_t jerr;
    json_t *o = json_loads(ans, 0, &jerr);
    if (!json_is_object(o))
        die("the answer is not a JSON object", ans);
    json_t *ret = json_object_get(o, "return"), *err = json_object_get(o, "error");
    json_t *id = json_object_get(o, "id");
    if (!ret == !err || json_object_size(o) != 1u + (id != NULL))
        die("the answer is not exactly one of return/error (and id)", ans);
    if (err) {
        const char *cls = json_string_value(json_object_get(err, "class"));
        const char *desc = json_string_value(json_object_get(err, "desc"));
        if (!cls || (strcmp(cls, "GenericError") && strcmp(cls, "CommandNotFound") &&
                     strcmp(cls, "DeviceNotFound")))
            die("an error without a QMP class", ans);
        if (!desc || !desc[0] || json_object_size(err) != 2)
            die("an error without its description", ans);
    }
    if (id) {
        /* The request parsed, and its id is the answer's. */
        json_t *r = json_loadb(req, len, JSON_DECODE_ANY, &jerr);
        if (!json_is_object(r) || !json_equal(json_object_get(r, "id"), id))
            die("the id is not the request's", ans);
        json_decref(r);
    }
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    calls = size ? data[0] : 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len <= CTL_LINE_MAX) {
            char *ans = ctl_handle(&be, NULL, p, len);
            if (!ans)
                die("no answer", "out of memory?");
            check_answer(p, len, ans);
            free(ans);
        }
        p += len + (nl ? 1 : 0);
    }
    return 0;
}
