/* The JSON writer, into a memstream, compared with exact text.
 *
 * The pretty-printed expectations are verbatim `qemu-img info
 * --output=json` output of qemu-img 7.2 (4-space indent, "key": value,
 * "[]"/"{}" for empty containers), re-created through the writer. The
 * compact expectation is a `qemu-img map --output=json` row, which
 * json.h names as the model for compact mode. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/json.h"

struct mem {
    char *buf;
    size_t len;
    FILE *f;
    struct json_out j;
};

static void mem_open(struct mem *m, bool compact)
{
    m->buf = NULL;
    m->len = 0;
    m->f = open_memstream(&m->buf, &m->len);
    assert_non_null(m->f);
    json_init(&m->j, m->f, compact);
}

/* Close the stream and compare; frees the buffer. */
static void mem_expect(struct mem *m, const char *want)
{
    assert_int_equal(fclose(m->f), 0);
    if (strcmp(m->buf, want) != 0) {
        /* show where they part */
        size_t i = 0;
        while (m->buf[i] && m->buf[i] == want[i])
            i++;
        print_error("JSON differs at byte %zu:\n--- got ---\n%s\n--- want ---\n%s\n", i, m->buf,
                    want);
        free(m->buf);
        fail();
    }
    free(m->buf);
}

/* The qcow2 format-specific block, as qemu-img 7.2 prints it. */
static void qcow2_specific(struct json_out *j)
{
    json_obj_begin(j, "format-specific");
    json_str(j, "type", "qcow2");
    json_obj_begin(j, "data");
    json_str(j, "compat", "1.1");
    json_str(j, "compression-type", "zlib");
    json_bool(j, "lazy-refcounts", false);
    json_int(j, "refcount-bits", 16);
    json_bool(j, "corrupt", false);
    json_bool(j, "extended-l2", false);
    json_obj_end(j);
    json_obj_end(j);
}

static void test_pretty_info_with_snapshot(void **state)
{
    (void)state;
    struct mem m;
    mem_open(&m, false);
    struct json_out *j = &m.j;
    json_obj_begin(j, NULL);
    json_arr_begin(j, "snapshots");
    json_obj_begin(j, NULL);
    json_uint(j, "icount", 0);
    json_uint(j, "vm-clock-nsec", 0);
    json_str(j, "name", "snap1");
    json_uint(j, "date-sec", 1795572140);
    json_uint(j, "date-nsec", 694714000);
    json_uint(j, "vm-clock-sec", 0);
    json_str(j, "id", "1");
    json_uint(j, "vm-state-size", 0);
    json_obj_end(j);
    json_arr_end(j);
    json_uint(j, "virtual-size", 1048576);
    json_str(j, "filename", "a.qcow2");
    json_uint(j, "cluster-size", 4096);
    json_str(j, "format", "qcow2");
    json_uint(j, "actual-size", 36864);
    qcow2_specific(j);
    json_bool(j, "dirty-flag", false);
    json_obj_end(j);
    json_end(j);
    /* qemu-img info --output=json a.qcow2 (4k clusters, one snapshot) */
    mem_expect(&m,
        "{\n"
        "    \"snapshots\": [\n"
        "        {\n"
        "            \"icount\": 0,\n"
        "            \"vm-clock-nsec\": 0,\n"
        "            \"name\": \"snap1\",\n"
        "            \"date-sec\": 1795572140,\n"
        "            \"date-nsec\": 694714000,\n"
        "            \"vm-clock-sec\": 0,\n"
        "            \"id\": \"1\",\n"
        "            \"vm-state-size\": 0\n"
        "        }\n"
        "    ],\n"
        "    \"virtual-size\": 1048576,\n"
        "    \"filename\": \"a.qcow2\",\n"
        "    \"cluster-size\": 4096,\n"
        "    \"format\": \"qcow2\",\n"
        "    \"actual-size\": 36864,\n"
        "    \"format-specific\": {\n"
        "        \"type\": \"qcow2\",\n"
        "        \"data\": {\n"
        "            \"compat\": \"1.1\",\n"
        "            \"compression-type\": \"zlib\",\n"
        "            \"lazy-refcounts\": false,\n"
        "            \"refcount-bits\": 16,\n"
        "            \"corrupt\": false,\n"
        "            \"extended-l2\": false\n"
        "        }\n"
        "    },\n"
        "    \"dirty-flag\": false\n"
        "}\n");
}

static void test_pretty_backing_chain_array(void **state)
{
    (void)state;
    struct mem m;
    mem_open(&m, false);
    struct json_out *j = &m.j;
    json_arr_begin(j, NULL);
    json_obj_begin(j, NULL);
    json_str(j, "backing-filename-format", "qcow2");
    json_uint(j, "virtual-size", 1048576);
    json_str(j, "filename", "o.qcow2");
    json_uint(j, "cluster-size", 65536);
    json_str(j, "format", "qcow2");
    json_uint(j, "actual-size", 200704);
    qcow2_specific(j);
    json_str(j, "full-backing-filename", "b.qcow2");
    json_str(j, "backing-filename", "b.qcow2");
    json_bool(j, "dirty-flag", false);
    json_obj_end(j);
    json_obj_begin(j, NULL);
    json_uint(j, "virtual-size", 1048576);
    json_str(j, "filename", "b.qcow2");
    json_uint(j, "cluster-size", 65536);
    json_str(j, "format", "qcow2");
    json_uint(j, "actual-size", 200704);
    qcow2_specific(j);
    json_bool(j, "dirty-flag", false);
    json_obj_end(j);
    json_arr_end(j);
    json_end(j);
    /* qemu-img info --output=json --backing-chain o.qcow2 */
    const char *spec =
        "        \"format-specific\": {\n"
        "            \"type\": \"qcow2\",\n"
        "            \"data\": {\n"
        "                \"compat\": \"1.1\",\n"
        "                \"compression-type\": \"zlib\",\n"
        "                \"lazy-refcounts\": false,\n"
        "                \"refcount-bits\": 16,\n"
        "                \"corrupt\": false,\n"
        "                \"extended-l2\": false\n"
        "            }\n"
        "        },\n";
    char *want;
    assert_true(asprintf(&want,
        "[\n"
        "    {\n"
        "        \"backing-filename-format\": \"qcow2\",\n"
        "        \"virtual-size\": 1048576,\n"
        "        \"filename\": \"o.qcow2\",\n"
        "        \"cluster-size\": 65536,\n"
        "        \"format\": \"qcow2\",\n"
        "        \"actual-size\": 200704,\n"
        "%s"
        "        \"full-backing-filename\": \"b.qcow2\",\n"
        "        \"backing-filename\": \"b.qcow2\",\n"
        "        \"dirty-flag\": false\n"
        "    },\n"
        "    {\n"
        "        \"virtual-size\": 1048576,\n"
        "        \"filename\": \"b.qcow2\",\n"
        "        \"cluster-size\": 65536,\n"
        "        \"format\": \"qcow2\",\n"
        "        \"actual-size\": 200704,\n"
        "%s"
        "        \"dirty-flag\": false\n"
        "    }\n"
        "]\n", spec, spec) > 0);
    mem_expect(&m, want);
    free(want);
}

static void test_pretty_empty_and_nested(void **state)
{
    (void)state;
    struct mem m;
    mem_open(&m, false);
    struct json_out *j = &m.j;
    json_obj_begin(j, NULL);
    json_arr_begin(j, "empty-list");
    json_arr_end(j);
    json_obj_begin(j, "empty-dict");
    json_obj_end(j);
    json_arr_begin(j, "matrix");
    json_arr_begin(j, NULL);
    json_int(j, NULL, 1);
    json_int(j, NULL, -2);
    json_arr_end(j);
    json_arr_begin(j, NULL);
    json_arr_end(j);
    json_obj_begin(j, NULL);
    json_obj_end(j);
    json_arr_end(j);
    json_int(j, "min", INT64_MIN);
    json_uint(j, "max", UINT64_MAX);
    json_bool(j, "t", true);
    json_obj_end(j);
    json_end(j);
    /* QEMU's qobject pretty printer: empty containers as [] and {} */
    mem_expect(&m,
        "{\n"
        "    \"empty-list\": [],\n"
        "    \"empty-dict\": {},\n"
        "    \"matrix\": [\n"
        "        [\n"
        "            1,\n"
        "            -2\n"
        "        ],\n"
        "        [],\n"
        "        {}\n"
        "    ],\n"
        "    \"min\": -9223372036854775808,\n"
        "    \"max\": 18446744073709551615,\n"
        "    \"t\": true\n"
        "}\n");
}

static void test_top_level_scalars_and_empty(void **state)
{
    (void)state;
    struct mem m;
    mem_open(&m, false);
    json_arr_begin(&m.j, NULL);
    json_arr_end(&m.j);
    json_end(&m.j);
    mem_expect(&m, "[]\n");

    mem_open(&m, false);
    json_obj_begin(&m.j, NULL);
    json_obj_end(&m.j);
    json_end(&m.j);
    mem_expect(&m, "{}\n");
}

/* The escapes qemu-img prints identically (qemu-img info on a file named
 * "a<TAB>b\"c\\d<0x01>e" prints "a\tb\"c\\d\u0001e"). */
static void test_escapes_exact(void **state)
{
    (void)state;
    struct mem m;
    mem_open(&m, false);
    json_obj_begin(&m.j, NULL);
    json_str(&m.j, "filename", "a\tb\"c\\d\001e\nf\rg/h");
    json_str(&m.j, "k\"ey", "");
    json_obj_end(&m.j);
    json_end(&m.j);
    mem_expect(&m,
        "{\n"
        "    \"filename\": \"a\\tb\\\"c\\\\d\\u0001e\\nf\\rg/h\",\n"
        "    \"k\\\"ey\": \"\"\n"
        "}\n");
}

/* RFC 8259 string decoder for the checks below: returns the decoded bytes
 * (ASCII / \u00XX only, which is all these inputs need) or fails. */
static size_t json_decode(const char *lit, char *out, size_t max)
{
    assert_int_equal(lit[0], '"');
    size_t n = 0;
    const char *p = lit + 1;
    for (; *p != '"'; p++) {
        assert_true(n < max);
        unsigned char c = (unsigned char)*p;
        if (c < 0x20)
            fail_msg("raw control byte 0x%02x inside a JSON string", c);
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }
        p++;
        switch (*p) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '/': out[n++] = '/'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            char hex[5] = { 0 };
            memcpy(hex, p + 1, 4);
            char *end;
            unsigned long cp = strtoul(hex, &end, 16);
            if (end != hex + 4)
                fail_msg("bad \\u escape '%s'", hex);
            assert_true(cp < 0x80);
            out[n++] = (char)cp;
            p += 4;
            break;
        }
        default:
            fail_msg("invalid escape \\%c", *p);
        }
    }
    assert_string_equal(p + 1, "");
    return n;
}

/* Every control character must come out escaped and round-trip (qemu
 * writes \b, \f and \u001F-style upper-case hex; any valid JSON form is
 * accepted here). */
static void test_escapes_all_controls_roundtrip(void **state)
{
    (void)state;
    char in[160];
    size_t k = 0;
    for (int c = 1; c < 0x80; c++)
        in[k++] = (char)c;
    in[k] = '\0';
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct json_out j;
    json_init(&j, f, false);
    json_str(&j, NULL, in);
    fclose(f);
    char out[160];
    size_t n = json_decode(buf, out, sizeof(out));
    assert_int_equal(n, k);
    assert_memory_equal(out, in, k);
    free(buf);
}

/* Compact mode is documented as "single line, as qemu-img map prints
 * rows"; qemu-img 7.2 map --output=json prints
 * { "start": 0, "length": 8192, ..., "offset": 20480}
 * i.e. "{ " before the first member, ", " between, and "}" with no space. */
static void test_compact_map_row(void **state)
{
    (void)state;
    struct mem m;
    mem_open(&m, true);
    struct json_out *j = &m.j;
    json_obj_begin(j, NULL);
    json_uint(j, "start", 0);
    json_uint(j, "length", 8192);
    json_uint(j, "depth", 0);
    json_bool(j, "present", true);
    json_bool(j, "zero", false);
    json_bool(j, "data", true);
    json_uint(j, "offset", 20480);
    json_obj_end(j);
    mem_expect(&m, "{ \"start\": 0, \"length\": 8192, \"depth\": 0, \"present\": true, "
                   "\"zero\": false, \"data\": true, \"offset\": 20480}");
}

static void test_compact_single_line(void **state)
{
    (void)state;
    struct mem m;
    mem_open(&m, true);
    struct json_out *j = &m.j;
    json_obj_begin(j, NULL);
    json_str(j, "a", "x\ny");
    json_arr_begin(j, "l");
    json_int(j, NULL, 1);
    json_obj_begin(j, NULL);
    json_bool(j, "b", false);
    json_obj_end(j);
    json_arr_end(j);
    json_obj_begin(j, "e");
    json_obj_end(j);
    json_obj_end(j);
    assert_int_equal(fclose(m.f), 0);
    /* one line, all members present in order, balanced */
    assert_null(strchr(m.buf, '\n'));
    const char *order[] = { "\"a\": \"x\\ny\"", "\"l\": [", "1", "\"b\": false", "\"e\": {}" };
    const char *p = m.buf;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        const char *q = strstr(p, order[i]);
        if (!q)
            fail_msg("'%s' missing (or out of order) in %s", order[i], m.buf);
        p = q + strlen(order[i]);
    }
    assert_int_equal(m.buf[0], '{');
    assert_int_equal(m.buf[strlen(m.buf) - 1], '}');
    free(m.buf);
}

/* Deeper than JSON_MAX_DEPTH: no memory error, brackets still balanced. */
static void test_too_deep_is_safe(void **state)
{
    (void)state;
    struct mem m;
    mem_open(&m, false);
    for (int i = 0; i < JSON_MAX_DEPTH + 8; i++)
        json_arr_begin(&m.j, NULL);
    json_int(&m.j, NULL, 7);
    for (int i = 0; i < JSON_MAX_DEPTH + 8; i++)
        json_arr_end(&m.j);
    json_end(&m.j);
    assert_int_equal(fclose(m.f), 0);
    int open = 0, close = 0;
    for (char *p = m.buf; *p; p++) {
        open += *p == '[';
        close += *p == ']';
    }
    assert_int_equal(open, JSON_MAX_DEPTH + 8);
    assert_int_equal(close, JSON_MAX_DEPTH + 8);
    assert_non_null(strchr(m.buf, '7'));
    free(m.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pretty_info_with_snapshot),
        cmocka_unit_test(test_pretty_backing_chain_array),
        cmocka_unit_test(test_pretty_empty_and_nested),
        cmocka_unit_test(test_top_level_scalars_and_empty),
        cmocka_unit_test(test_escapes_exact),
        cmocka_unit_test(test_escapes_all_controls_roundtrip),
        cmocka_unit_test(test_compact_map_row),
        cmocka_unit_test(test_compact_single_line),
        cmocka_unit_test(test_too_deep_is_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
