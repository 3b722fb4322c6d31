/* cli_parse_size / cli_human_size / cli_output_format.
 *
 * Expected values come from qemu-img 7.2 itself: sizes from
 * `qemu-img create -f raw x SIZE` ("Formatting ... size=N"), human sizes
 * from `qemu-img info` ("virtual size: 388 KiB (397312 bytes)") and from
 * QEMU's size_to_str() rule (switch to the next unit at >= 1000 of the
 * current one, "%0.3g"), checked against qemu-img output where a raw
 * image of that size can be made. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cli.h"

static void ok(const char *s, uint64_t want)
{
    uint64_t v = 0xdeadbeefULL;
    int r = cli_parse_size(s, &v);
    if (r != 0)
        fail_msg("cli_parse_size(\"%s\") = %d, want 0 (value %llu)", s, r, (unsigned long long)want);
    if (v != want)
        fail_msg("cli_parse_size(\"%s\") gave %llu, want %llu", s, (unsigned long long)v,
                 (unsigned long long)want);
}

static void bad(const char *s)
{
    uint64_t v = 0xdeadbeefULL;
    int r = cli_parse_size(s, &v);
    if (r >= 0)
        fail_msg("cli_parse_size(\"%s\") accepted it as %llu, want an error", s ? s : "(null)",
                 (unsigned long long)v);
    if (r != -EINVAL && r != -ERANGE)
        fail_msg("cli_parse_size(\"%s\") = %d, want -EINVAL or -ERANGE", s ? s : "(null)", r);
}

static void test_parse_plain(void **state)
{
    (void)state;
    ok("0", 0);
    ok("1", 1);
    ok("512", 512);
    ok("4096", 4096);
    ok("18446744073709551615", UINT64_MAX);
    ok("1b", 1);
    ok("1B", 1);
}

static void test_parse_suffixes(void **state)
{
    (void)state;
    ok("1k", 1024);
    ok("1K", 1024);
    ok("64k", 65536);
    ok("1m", 1048576);
    ok("1M", 1048576);
    ok("3M", 3 * 1048576ULL);
    ok("1g", 1073741824ULL);
    ok("2G", 2147483648ULL);
    ok("1t", 1099511627776ULL);
    ok("5T", 5 * 1099511627776ULL);
    ok("1P", 1125899906842624ULL);
    ok("7e", 8070450532247928832ULL); /* qemu-img: size=8070450532247928832 */
    ok("15E", 15ULL << 60);
    ok("0k", 0);
}

static void test_parse_hex(void **state)
{
    (void)state;
    ok("0x10", 16);
    ok("0X1000", 4096);
    ok("0xffffffffffffffff", UINT64_MAX);
    ok("0x0", 0);
}

/* qemu parses the integer part in decimal: "010" is 10, not octal 8
 * (qemu-img create -f raw x 010 -> size=10). */
static void test_parse_leading_zero_is_decimal(void **state)
{
    (void)state;
    ok("010", 10);
    ok("0010k", 10 * 1024);
    ok("08", 8);
    ok("09", 9);
}

static void test_parse_overflow(void **state)
{
    (void)state;
    bad("16E");                   /* 2^64 */
    bad("17179869184G");          /* 2^34 GiB = 2^64 */
    bad("16777216T");             /* 2^24 TiB = 2^64 */
    bad("18014398509481984k");    /* 2^54 KiB = 2^64 */
    bad("18446744073709551616");  /* 2^64 */
    bad("99999999999999999999999");
    bad("0x10000000000000000");
}

static void test_parse_junk(void **state)
{
    (void)state;
    bad(NULL);
    bad("");
    bad("abc");
    bad("k");
    bad("1kB");    /* qemu-img: invalid */
    bad("1KiB");
    bad("1x");
    bad("1 k");
    bad("5 ");     /* qemu-img: invalid */
    bad("1k1");
    bad("0x");
    bad("1Z");
}

static void test_parse_negative(void **state)
{
    (void)state;
    bad("-1");
    bad("-0");
    bad("-1k");
    /* strtoull() skips leading blanks and then accepts '-', wrapping the
     * value to 2^64-1: a negative number must still be refused. */
    bad(" -1");
    bad("\t-5");
    bad(" -1k");
}

static void human(uint64_t v, const char *want)
{
    char buf[64];
    memset(buf, 'X', sizeof(buf));
    cli_human_size(v, buf, sizeof(buf));
    if (strcmp(buf, want) != 0)
        fail_msg("cli_human_size(%llu) = \"%s\", qemu-img prints \"%s\"", (unsigned long long)v,
                 buf, want);
}

static void test_human_exact_units(void **state)
{
    (void)state;
    human(0, "0 B");
    human(1, "1 B");
    human(512, "512 B");              /* qemu-img info: "512 B" */
    human(999, "999 B");
    human(1024, "1 KiB");             /* "1 KiB" */
    human(1536, "1.5 KiB");           /* "1.5 KiB" */
    human(397312, "388 KiB");         /* "388 KiB" */
    human(1048576, "1 MiB");          /* "1 MiB" */
    human(1572864, "1.5 MiB");        /* "1.5 MiB" */
    human(123456789, "118 MiB");
    human(2147483648ULL, "2 GiB");    /* "2 GiB" */
    human(1099511627776ULL, "1 TiB"); /* "1 TiB" */
    human(5000000000000ULL, "4.55 TiB"); /* "4.55 TiB" */
    human(8070450532247928832ULL, "7 EiB");
    human(UINT64_MAX, "16 EiB");
}

/* qemu-img switches to the next unit from 1000 of the current one on
 * (so "%0.3g" never prints "1e+03"): qemu-img info on a 1024000-byte raw
 * image says "virtual size: 0.977 MiB (1024000 bytes)". */
static void test_human_1000_to_1023(void **state)
{
    (void)state;
    human(1000, "0.977 KiB");
    human(1023, "0.999 KiB");
    human(1024000, "0.977 MiB");      /* qemu-img info: "0.977 MiB" */
    human(1047552, "0.999 MiB");      /* qemu-img info: "0.999 MiB" */
    human(1048576000ULL, "0.977 GiB");
    human(1073741824000ULL, "0.977 TiB");
}

static void test_human_small_buffer(void **state)
{
    (void)state;
    char buf[4];
    memset(buf, 'X', sizeof(buf));
    cli_human_size(397312, buf, sizeof(buf));
    assert_int_equal(buf[3], '\0'); /* truncated, terminated */
    assert_memory_equal(buf, "388", 3);
}

static void test_output_format(void **state)
{
    (void)state;
    assert_int_equal(cli_output_format("human"), 0);
    assert_int_equal(cli_output_format("json"), 1);
    assert_int_equal(cli_output_format("JSON"), -1);
    assert_int_equal(cli_output_format(""), -1);
    assert_int_equal(cli_output_format("jsonx"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_plain),
        cmocka_unit_test(test_parse_suffixes),
        cmocka_unit_test(test_parse_hex),
        cmocka_unit_test(test_parse_leading_zero_is_decimal),
        cmocka_unit_test(test_parse_overflow),
        cmocka_unit_test(test_parse_junk),
        cmocka_unit_test(test_parse_negative),
        cmocka_unit_test(test_human_exact_units),
        cmocka_unit_test(test_human_1000_to_1023),
        cmocka_unit_test(test_human_small_buffer),
        cmocka_unit_test(test_output_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
