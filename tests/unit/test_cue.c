/* CUE sheets (formats/optical): the parser's errors name the sheet, the
 * line and the field; the layout's addresses for pregaps (INDEX 00 in the
 * file, PREGAP not in it), POSTGAP, several files and mixed sector sizes
 * in one file; overlapping, absurd and out-of-file indexes refused; the
 * cue driver's errors for missing BIN files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "optical/cue.h"
#include "testutil.h"

static struct cue_sheet cs;

/* sheet must fail to parse with a message holding every one of the
 * NULL-terminated fragments. */
static void parse_fails(int line, const char *sheet, ...)
{
    struct scuse_err err = { 0 };
    if (cue_parse(sheet, strlen(sheet), "t.cue", &cs, &err) == 0)
        fail_msg("line %d: parsed: %s", line, sheet);
    assert_null(strchr(err.msg, '\n'));
    va_list ap;
    va_start(ap, sheet);
    for (const char *frag; (frag = va_arg(ap, const char *));)
        if (!strstr(err.msg, frag))
            fail_msg("line %d: '%s' lacks '%s'", line, err.msg, frag);
    va_end(ap);
}
#define FAILS(...) parse_fails(__LINE__, __VA_ARGS__, NULL)

#define HEAD "FILE \"a.bin\" BINARY\n"
#define T1 "  TRACK 01 MODE1/2352\n    INDEX 01 00:00:00\n"

static void test_parse_errors(void **state)
{
    (void)state;
    FAILS("", "'t.cue'", "no TRACK");
    FAILS("TRACK 01 AUDIO\n", "'t.cue' line 1", "TRACK before any FILE");
    FAILS(HEAD "  TRACK 01 MODE3/2352\n", "line 2", "TRACK mode", "unknown mode 'MODE3/2352'");
    FAILS(HEAD "  TRACK 01 CDG\n", "line 2", "CDG is not supported");
    FAILS(HEAD "  TRACK 00 AUDIO\n", "line 2", "TRACK number", "out of range");
    FAILS(HEAD "  TRACK 1x AUDIO\n", "line 2", "TRACK number", "not a number");
    FAILS(HEAD T1 "  TRACK 03 AUDIO\n", "line 4", "expected 2");
    FAILS(HEAD "  TRACK 01 AUDIO\n  TRACK 02 AUDIO\n", "line 3", "track 1 has no INDEX 01");
    FAILS(HEAD "  TRACK 01 AUDIO\n", "line 2", "TRACK 01 has no INDEX 01");
    FAILS(HEAD "  TRACK 01 AUDIO\n    INDEX 01 00:61:00\n", "line 3", "INDEX 01",
          "seconds must be below 60");
    FAILS(HEAD "  TRACK 01 AUDIO\n    INDEX 01 00:00:75\n", "line 3", "frames below 75");
    FAILS(HEAD "  TRACK 01 AUDIO\n    INDEX 01 0:0\n", "line 3", "not mm:ss:ff");
    FAILS(HEAD "  TRACK 01 AUDIO\n    INDEX 01 00:00:10\n    INDEX 00 00:00:00\n", "line 4",
          "INDEX 00", "before INDEX 01");
    FAILS(HEAD "  TRACK 01 AUDIO\n    INDEX 00 00:00:10\n    INDEX 01 00:00:05\n", "line 4",
          "before INDEX 00");
    FAILS(HEAD "  TRACK 01 AUDIO\n    INDEX 01 00:00:10\n    INDEX 01 00:00:20\n", "line 4",
          "given twice");
    FAILS(HEAD "  TRACK 01 AUDIO\n    INDEX 01 00:00:10\n    INDEX 02 00:00:05\n", "line 4",
          "INDEX 02");
    FAILS(HEAD "  TRACK 01 AUDIO\n    INDEX 01 00:00:00\n    PREGAP 00:02:00\n", "line 4",
          "PREGAP", "before the track's INDEX");
    FAILS(HEAD "    INDEX 01 00:00:00\n", "line 2", "INDEX outside a TRACK");
    FAILS("FILE \"a.bin\" WAVE\n", "line 1", "FILE", "WAVE is not supported");
    FAILS("FILE \"a.bin\n", "line 1", "FILE", "quote is not closed");
    FAILS("FILE \"a.bin\" BINARY extra\n", "line 1", "unexpected text");
    FAILS(HEAD T1 "  FROB 1\n", "line 4", "unknown keyword 'FROB'");
    FAILS(HEAD T1 "  FLAGS XYZ\n", "line 4", "FLAGS", "unknown flag 'XYZ'");
    FAILS(HEAD T1 "REM SESSION 02\n", "line 4", "several sessions");
    FAILS(HEAD "\x01" T1, "line 2", "control character");
    FAILS(HEAD "  TRACK 01 AUDIO\n" HEAD "    INDEX 01 00:00:00\n", "line 4",
          "INDEX 01 must be in its own FILE");
}

static void layout_fails(int line, const char *sheet, const uint64_t *sizes, const char *frag)
{
    struct scuse_err err = { 0 };
    assert_int_equal(cue_parse(sheet, strlen(sheet), "t.cue", &cs, &err), 0);
    struct optical_disc d;
    if (cue_layout(&cs, sizes, "t.cue", &d, &err) == 0)
        fail_msg("line %d: laid out: %s", line, sheet);
    if (!strstr(err.msg, frag))
        fail_msg("line %d: '%s' lacks '%s'", line, err.msg, frag);
}

static void test_layout(void **state)
{
    (void)state;
    /* One BIN: data (2352) for 100 sectors, then audio with a 2 s INDEX
     * 00 pregap; a second BIN of audio after a PREGAP, with a POSTGAP. */
    const char *sheet = "REM COMMENT x\n"
                        "FILE \"a.bin\" BINARY\n"
                        "  TRACK 01 MODE1/2352\n    INDEX 01 00:00:00\n"
                        "  TRACK 02 AUDIO\n    INDEX 00 00:01:25\n    INDEX 01 00:03:25\n"
                        "FILE \"b.bin\" BINARY\n"
                        "  TRACK 03 AUDIO\n    PREGAP 00:02:00\n    INDEX 01 00:00:00\n"
                        "    POSTGAP 00:00:10\n";
    struct scuse_err err = { 0 };
    assert_int_equal(cue_parse(sheet, strlen(sheet), "t.cue", &cs, &err), 0);
    uint64_t sizes[2] = { (100 + 150 + 300) * 2352ull, 75 * 2352ull };
    struct optical_disc d;
    assert_int_equal(cue_layout(&cs, sizes, "t.cue", &d, &err), 0);
    assert_int_equal(d.n_tracks, 3);
    assert_int_equal(d.track[0].start, 0);
    assert_int_equal(d.track[0].end, 100);
    assert_int_equal(d.track[0].ctl, 0x04);
    assert_int_equal(d.track[1].pregap, 100);
    assert_int_equal(d.track[1].stored_lba, 100);
    assert_int_equal(d.track[1].start, 250);
    assert_int_equal(d.track[1].file_off, 100 * 2352);
    assert_int_equal(d.track[1].end, 550);
    assert_int_equal(d.track[1].ctl, 0x00);
    assert_int_equal(d.track[2].pregap, 550);
    assert_int_equal(d.track[2].stored_lba, 700);
    assert_int_equal(d.track[2].start, 700);
    assert_int_equal(d.track[2].stored_end, 775);
    assert_int_equal(d.track[2].end, 785);
    assert_int_equal(d.leadout, 785);

    /* Mixed sizes in one BIN: 10 MODE1/2048 sectors, then audio. */
    const char *mixed = HEAD "  TRACK 01 MODE1/2048\n    INDEX 01 00:00:00\n"
                             "  TRACK 02 AUDIO\n    INDEX 01 00:00:10\n";
    assert_int_equal(cue_parse(mixed, strlen(mixed), "t.cue", &cs, &err), 0);
    uint64_t msize = 10 * 2048 + 20 * 2352;
    assert_int_equal(cue_layout(&cs, &msize, "t.cue", &d, &err), 0);
    assert_int_equal(d.track[1].file_off, 10 * 2048);
    assert_int_equal(d.track[1].start, 10);
    assert_int_equal(d.leadout, 30);

    /* Track 1's stored pregap is the lead-in, not on the disc. */
    const char *lead = HEAD "  TRACK 01 MODE1/2352\n    INDEX 00 00:00:00\n"
                            "    INDEX 01 00:02:00\n";
    assert_int_equal(cue_parse(lead, strlen(lead), "t.cue", &cs, &err), 0);
    uint64_t lsize = 200 * 2352;
    assert_int_equal(cue_layout(&cs, &lsize, "t.cue", &d, &err), 0);
    assert_int_equal(d.track[0].start, 0);
    assert_int_equal(d.track[0].file_off, 150 * 2352);
    assert_int_equal(d.leadout, 50);

    uint64_t small = 100 * 2352;
    layout_fails(__LINE__, HEAD "  TRACK 01 AUDIO\n    INDEX 01 00:05:00\n", &small,
                 "past the end of 'a.bin'");
    layout_fails(__LINE__, HEAD "  TRACK 01 AUDIO\n    INDEX 01 00:00:50\n"
                                "  TRACK 02 AUDIO\n    INDEX 01 00:00:40\n", &small,
                 "overlap");
    layout_fails(__LINE__, HEAD "  TRACK 01 AUDIO\n    INDEX 01 00:00:50\n"
                                "  TRACK 02 AUDIO\n    INDEX 01 00:00:50\n", &small,
                 "line 5");
    uint64_t tiny = 1000;
    layout_fails(__LINE__, HEAD "  TRACK 01 AUDIO\n    INDEX 01 00:00:00\n", &tiny,
                 "holds no sector");
}

static void test_driver_errors(void **state)
{
    (void)state;
    tu_store("missing.cue", HEAD T1, strlen(HEAD T1));
    struct blk_node *bs = NULL;
    struct scuse_err err = { 0 };
    assert_true(blk_open(tu_path("missing.cue"), "cue", 0, NULL, &bs, &err) < 0);
    assert_null(bs);
    assert_non_null(strstr(err.msg, "missing.cue' line 1: FILE 'a.bin'"));
    const char *bad = HEAD "  TRACK 01 MODE7\n";
    tu_store("bad.cue", bad, strlen(bad));
    memset(&err, 0, sizeof(err));
    assert_true(blk_open(tu_path("bad.cue"), "cue", 0, NULL, &bs, &err) < 0);
    assert_non_null(strstr(err.msg, "bad.cue' line 2: TRACK mode: unknown mode 'MODE7'"));
    /* A binary file is never probed as a CUE sheet. */
    uint8_t bin[4096] = { 0 };
    tu_store("a.bin", bin, sizeof(bin));
    memset(&err, 0, sizeof(err));
    assert_int_equal(blk_open(tu_path("a.bin"), NULL, 0, NULL, &bs, &err), 0);
    assert_string_equal(blk_format_name(bs), "raw");
    blk_close(bs);
    /* With its BIN there, the sheet opens (and is probed). */
    const char *ok = "FILE \"a.bin\" BINARY\n  TRACK 01 MODE1/2048\n    INDEX 01 00:00:00\n";
    tu_store("ok.cue", ok, strlen(ok));
    assert_int_equal(blk_open(tu_path("ok.cue"), NULL, 0, NULL, &bs, &err), 0);
    assert_string_equal(blk_format_name(bs), "cue");
    assert_int_equal(bs->size, 4096);
    assert_false(blk_format_writable(bs));
    blk_close(bs);
}

static int setup(void **state)
{
    (void)state;
    return tu_dir_make("cue");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_driver_errors),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
