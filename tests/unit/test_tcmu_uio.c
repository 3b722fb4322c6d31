/* TCMU discovery: UIO names parsed whole (tcm-user/<hba>/<dev>/<config>),
 * uio directories matched exactly (uio1 is not uio10 nor uio01), sysfs
 * scanned in a tree of the test's own, the mapping opened with the size
 * sysfs gives; and scuse's dev_config strings, both ways. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tcmu/config.h"
#include "tcmu/uio.h"
#include "testutil.h"

static void test_parse_name(void **state)
{
    (void)state;
    struct tcmu_uio_name n;
    struct scuse_err err = { 0 };
    assert_int_equal(tcmu_uio_parse_name("tcm-user/1/vm1/scuse/qcow2@/var/a b/c.qcow2\n", &n,
                                         &err), 0);
    assert_int_equal(n.hba, 1);
    assert_string_equal(n.dev, "vm1");
    assert_string_equal(n.config, "scuse/qcow2@/var/a b/c.qcow2");
    assert_int_equal(tcmu_uio_parse_name("tcm-user/4294967295/d", &n, &err), 0);
    assert_int_equal(n.hba, 4294967295u);
    assert_string_equal(n.dev, "d");
    assert_string_equal(n.config, "");
    assert_int_equal(tcmu_uio_parse_name("tcm-user/0/x/file//path", &n, &err), 0);
    assert_string_equal(n.config, "file//path");
    /* A config echoed into attrib/dev_config keeps its newline. */
    assert_int_equal(tcmu_uio_parse_name("tcm-user/0/x/scuse//a\n\n", &n, &err), 0);
    assert_string_equal(n.config, "scuse//a");

    /* Other UIO drivers. */
    assert_int_equal(tcmu_uio_parse_name("uio_pdrv_genirq", &n, &err), -ENODEV);
    assert_int_equal(tcmu_uio_parse_name("tcm-users/1/d", &n, &err), -ENODEV);
    assert_int_equal(tcmu_uio_parse_name("", &n, &err), -ENODEV);
    /* Malformed TCMU names. */
    static const char *const bad[] = {
        "tcm-user/", "tcm-user/1", "tcm-user/1/", "tcm-user//d", "tcm-user/01/d",
        "tcm-user/+1/d", "tcm-user/-1/d", "tcm-user/4294967296/d", "tcm-user/x/d",
        "tcm-user/1/d/", "tcm-user/1//cfg", "tcm-user/1/d\x01/c", "tcm-user/1/d/c\n\n\n",
        "tcm-user/1/d/c\nx",
        "tcm-user/1 /d", "tcm-user/99999999999/d",
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear(&err);
        if (tcmu_uio_parse_name(bad[i], &n, &err) != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(err.msg[0] != '\0');
    }
    /* Too long a device name or config. */
    char longname[600];
    snprintf(longname, sizeof(longname), "tcm-user/1/%0300d", 7);
    assert_int_equal(tcmu_uio_parse_name(longname, &n, &err), -EINVAL);
    snprintf(longname, sizeof(longname), "tcm-user/1/d/%0300d", 7);
    assert_int_equal(tcmu_uio_parse_name(longname, &n, &err), -EINVAL);
}

static void test_dirnames(void **state)
{
    (void)state;
    unsigned m;
    assert_true(tcmu_uio_dirname("uio0", &m) && m == 0);
    assert_true(tcmu_uio_dirname("uio1", &m) && m == 1);
    assert_true(tcmu_uio_dirname("uio10", &m) && m == 10);
    assert_true(tcmu_uio_dirname("uio1048576", &m) && m == 1048576);
    static const char *const bad[] = { "uio", "uio01", "uio1x", "uiox", "uio-1", "uio+1",
                                       "uio 1", "Uio1", "uio1048577", "uio99999999999", "xuio1" };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (tcmu_uio_dirname(bad[i], &m))
            fail_msg("'%s' taken for a uio directory", bad[i]);
}

/* A sysfs tree: uio1 and uio10 are both TCMU devices, uio2 another
 * driver's, uio01 a decoy directory, uio3 has a malformed map size. */
static void make_uio(const char *dir, const char *name, const char *size)
{
    tu_run("mkdir -p sys/class/uio/%s/maps/map0 && printf '%%s\\n' '%s' > sys/class/uio/%s/name"
           " && printf '%%s\\n' '%s' > sys/class/uio/%s/maps/map0/size", dir, name, dir, size, dir);
}

static void test_scan(void **state)
{
    (void)state;
    tu_run("rm -rf sys");
    make_uio("uio1", "tcm-user/1/one/scuse/raw@/a", "0x0000000000812000");
    make_uio("uio10", "tcm-user/1/ten/scuse/qcow2@/b", "0x40800000");
    make_uio("uio2", "uio_pdrv_genirq", "0x1000");
    make_uio("uio01", "tcm-user/1/decoy/scuse/raw@/c", "0x1000");
    make_uio("uio3", "tcm-user/1/three/x", "lots");
    struct tcmu_uio_dev *v;
    size_t n;
    struct scuse_err err = { 0 };
    assert_int_equal(tcmu_uio_scan(tu_path("sys"), &v, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].minor, 1);
    assert_string_equal(v[0].name.dev, "one");
    assert_string_equal(v[0].uio_name, "tcm-user/1/one/scuse/raw@/a");
    assert_int_equal(v[0].map_size, 0x812000);
    assert_int_equal(v[1].minor, 10);
    assert_string_equal(v[1].name.dev, "ten");
    assert_int_equal(v[1].map_size, 0x40800000);
    free(v);
    /* Reading minor 1 reads uio1, never uio10 or uio01. */
    struct tcmu_uio_dev u;
    assert_int_equal(tcmu_uio_read(tu_path("sys"), 1, &u, &err), 0);
    assert_string_equal(u.name.dev, "one");
    assert_int_equal(tcmu_uio_read(tu_path("sys"), 2, &u, &err), -ENODEV);
    err_clear(&err);
    assert_true(tcmu_uio_read(tu_path("sys"), 3, &u, &err) == -EINVAL);
    assert_non_null(strstr(err.msg, "size"));
    err_clear(&err);
    assert_int_equal(tcmu_uio_read(tu_path("sys"), 4, &u, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "uio4"));
    /* No uio class at all: no devices. */
    assert_int_equal(tcmu_uio_scan(tu_path("nowhere"), &v, &n, &err), 0);
    assert_int_equal(n, 0);
}

/* The device node: mapped with the size sysfs gives (a file stands in
 * for /dev/uio1), shared with what the "kernel" writes. */
static void test_open_map(void **state)
{
    (void)state;
    tu_run("rm -rf dev && mkdir dev && truncate -s 65536 dev/uio1");
    int fd;
    void *map;
    struct scuse_err err = { 0 };
    assert_int_equal(tcmu_uio_open(tu_path("dev"), 1, 65536, &fd, &map, &err), 0);
    memset(map, 0xab, 65536);
    tcmu_uio_close(fd, map, 65536);
    uint8_t *b = tu_load("dev/uio1", 65536);
    assert_int_equal(b[0], 0xab);
    assert_int_equal(b[65535], 0xab);
    free(b);
    assert_int_equal(tcmu_uio_open(tu_path("dev"), 10, 65536, &fd, &map, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "uio10"));
}

/* ---- dev_config ---- */

static void test_config(void **state)
{
    (void)state;
    struct tcmu_image_cfg c;
    struct scuse_err err = { 0 };
    assert_int_equal(tcmu_config_parse("scuse/qcow2@/var/lib/x.qcow2", &c, &err), 1);
    assert_string_equal(c.fmt, "qcow2");
    assert_string_equal(c.path, "/var/lib/x.qcow2");
    assert_int_equal(tcmu_config_parse("scuse//images/a@b:c.raw", &c, &err), 1);
    assert_string_equal(c.fmt, "");
    assert_string_equal(c.path, "/images/a@b:c.raw");
    assert_int_equal(tcmu_config_parse("scuse/raw@/x\n", &c, &err), 1);
    assert_string_equal(c.path, "/x");
    assert_int_equal(tcmu_config_parse("scuse/raw@/x\n\n", &c, &err), -EINVAL);
    assert_int_equal(tcmu_config_parse("scuse/raw@/x@y", &c, &err), 1);
    assert_string_equal(c.fmt, "raw");
    assert_string_equal(c.path, "/x@y");
    /* Other handlers' configs. */
    static const char *const theirs[] = { "", "file//x", "qcow//x", "scuse", "scusex//a",
                                          "rbd/pool/img", "Scuse//a" };
    for (unsigned i = 0; i < sizeof(theirs) / sizeof(theirs[0]); i++)
        if (tcmu_config_parse(theirs[i], &c, &err) != 0)
            fail_msg("'%s' taken for scuse's", theirs[i]);
    /* scuse's, malformed. */
    static const char *const bad[] = { "scuse/", "scuse/qcow2", "scuse/qcow2@", "scuse/@/a",
                                       "scuse/QCOW2@/a", "scuse/qcow2@rel/a", "scuse/q c@/a",
                                       "scuse//a,b", "scuse//a\tb",
                                       "scuse/averyveryverylongfmt@/a" };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear(&err);
        if (tcmu_config_parse(bad[i], &c, &err) != -EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_non_null(strstr(err.msg, "dev_config"));
    }
    char longcfg[400] = "scuse//";
    memset(longcfg + 7, 'a', 300);
    longcfg[307] = '\0';
    assert_int_equal(tcmu_config_parse(longcfg, &c, &err), -EINVAL);

    /* Formatting, and back. */
    char buf[TCMU_CONFIG_MAX];
    assert_int_equal(tcmu_config_format("qcow2", "/a/b c.qcow2", buf, sizeof(buf), &err), 0);
    assert_string_equal(buf, "scuse/qcow2@/a/b c.qcow2");
    assert_int_equal(tcmu_config_parse(buf, &c, &err), 1);
    assert_string_equal(c.path, "/a/b c.qcow2");
    assert_int_equal(tcmu_config_format(NULL, "/a", buf, sizeof(buf), &err), 0);
    assert_string_equal(buf, "scuse//a");
    err_clear(&err);
    assert_int_equal(tcmu_config_format("raw", "/a,b", buf, sizeof(buf), &err), -EINVAL);
    assert_non_null(strstr(err.msg, "comma"));
    assert_int_equal(tcmu_config_format("raw", "rel", buf, sizeof(buf), &err), -EINVAL);
    char longpath[300] = "/";
    memset(longpath + 1, 'p', 260);
    longpath[261] = '\0';
    assert_int_equal(tcmu_config_format("raw", longpath, buf, sizeof(buf), &err), -ENAMETOOLONG);
}

static int setup(void **state)
{
    (void)state;
    return tu_dir_make("tcmu-uio");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_name),
        cmocka_unit_test(test_dirnames),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_open_map),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
