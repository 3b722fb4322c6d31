/* VMDK descriptor parser (formats/vmdk/desc.c): the fields and extent
 * lines it keeps, the CID rewrite that leaves every other byte alone, and
 * the refusals, each naming the file, the line and what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmdk/vmdk.h"

static int parse(const char *text, struct vmdk_desc *d, struct scuse_err *err)
{
    memset(err, 0, sizeof(*err));
    return vmdk_desc_parse(text, strlen(text), "d.vmdk", d, err);
}

static const char good[] =
    "# Disk DescriptorFile\r\n"
    "version=1\r\n"
    "encoding=\"UTF-8\"\n"
    "parentCID=0badcafe\n"          /* before CID: found by name, not position */
    "CID=fffffffe\n"
    "createType=\"twoGbMaxExtentSparse\"\n"
    "parentFileNameHint=\"../base dir/p.vmdk\"\n"
    "\n"
    "# Extent description\n"
    "RW 4192256 SPARSE \"d-s001.vmdk\"\n"
    "RDONLY 2048 FLAT \"d-flat.vmdk\" 128\n"
    "\tNOACCESS 8 ZERO\n"
    "RW 100 VMFS \"/abs/v.vmdk\"\n"
    "ddb.adapterType = \"lsilogic\"\n"
    "ddb.uuid.image=\"6000C29a-x\"\n";

static void test_fields_and_extents(void **state)
{
    (void)state;
    struct vmdk_desc d;
    struct scuse_err err;
    assert_int_equal(parse(good, &d, &err), 0);
    assert_int_equal(d.version, 1);
    assert_int_equal(d.cid, 0xfffffffe);
    assert_int_equal(d.parent_cid, 0x0badcafe);
    assert_string_equal(d.create_type, "twoGbMaxExtentSparse");
    assert_string_equal(d.parent_hint, "../base dir/p.vmdk");
    assert_int_equal(d.n_ext, 4);
    assert_int_equal(d.ext[0].access, VMDK_RW);
    assert_int_equal(d.ext[0].type, VMDK_SPARSE);
    assert_int_equal(d.ext[0].sectors, 4192256);
    assert_string_equal(d.ext[0].file, "d-s001.vmdk");
    assert_int_equal(d.ext[1].access, VMDK_RDONLY);
    assert_int_equal(d.ext[1].type, VMDK_FLAT);
    assert_int_equal(d.ext[1].offset, 128);
    assert_int_equal(d.ext[2].access, VMDK_NOACCESS);
    assert_int_equal(d.ext[2].type, VMDK_ZERO);
    assert_null(d.ext[2].file);
    assert_int_equal(d.ext[3].type, VMDK_VMFS);
    assert_string_equal(d.ext[3].file, "/abs/v.vmdk");
    assert_int_equal(d.ext[3].line, 13);
    assert_int_equal(d.total_sectors, 4192256ull + 2048 + 8 + 100);
    vmdk_desc_free(&d);
}

/* The new CID replaces the old one's digits; ddb lines, comments, CRLFs
 * and the order of keys stay byte for byte. */
static void test_cid_rewrite(void **state)
{
    (void)state;
    struct vmdk_desc d;
    struct scuse_err err;
    const char text[] = "# Disk DescriptorFile\nCID=1f\nparentCID=ffffffff\r\n"
                        "createType=\"monolithicSparse\"\nddb.x = \"CID=1f\"\n";
    assert_int_equal(parse(text, &d, &err), 0);
    assert_int_equal(d.cid, 0x1f);
    size_t n;
    char *t = vmdk_desc_with_cid(&d, 0xa0b1c2d3, &n);
    assert_non_null(t);
    assert_string_equal(t, "# Disk DescriptorFile\nCID=a0b1c2d3\nparentCID=ffffffff\r\n"
                           "createType=\"monolithicSparse\"\nddb.x = \"CID=1f\"\n");
    assert_int_equal(n, strlen(t));
    struct vmdk_desc d2;
    assert_int_equal(vmdk_desc_parse(t, n, "d.vmdk", &d2, &err), 0);
    assert_int_equal(d2.cid, 0xa0b1c2d3);
    free(t);
    vmdk_desc_free(&d2);
    vmdk_desc_free(&d);
}

/* An embedded descriptor ends at its first NUL (the rest of its sectors). */
static void test_nul_padding(void **state)
{
    (void)state;
    char buf[1024] = "CID=00000001\ncreateType=\"monolithicSparse\"\n";
    memcpy(buf + 600, "a garbage line, longer than 16 bytes", 36);
    struct vmdk_desc d;
    struct scuse_err err;
    assert_int_equal(vmdk_desc_parse(buf, sizeof(buf), "e.vmdk", &d, &err), 0);
    assert_int_equal(d.n_ext, 0);
    assert_int_equal(d.parent_cid, VMDK_CID_NONE);
    vmdk_desc_free(&d);
    assert_true(vmdk_desc_looks_like((const uint8_t *)buf, 600));
    assert_false(vmdk_desc_looks_like((const uint8_t *)buf, sizeof(buf)));
    /* QEMU's rewrite with a shorter CID leaves the old text's last bytes
     * after the NUL (seen: "\n\0\n\0\0..."): still a descriptor */
    buf[50] = '\n';
    assert_true(vmdk_desc_looks_like((const uint8_t *)buf, 600));
}

static void refused(const char *text, const char *want)
{
    struct vmdk_desc d;
    struct scuse_err err;
    int r = parse(text, &d, &err);
    if (r == 0 || !strstr(err.msg, want) || !strstr(err.msg, "'d.vmdk'")) {
        print_error("text: %s\nwant: %s\ngot: %d %s\n", text, want, r, err.msg);
        fail();
    }
    assert_int_equal(d.n_ext, 0);
    assert_null(d.text);
}

#define HEAD "CID=1\ncreateType=\"x\"\n"

static void test_refusals(void **state)
{
    (void)state;
    refused("CID=1\n", "no createType");
    refused("createType=\"x\"\n", "no CID");
    refused("CID=123456789\ncreateType=\"x\"\n", "line 1: CID is not a 32-bit hex number");
    refused("CID=xyz\ncreateType=\"x\"\n", "line 1: CID");
    refused(HEAD "parentCID=\n", "line 3: parentCID");
    refused(HEAD "version=4\n", "line 3: version must be 1, 2 or 3");
    refused(HEAD "hello world\n", "line 3: neither key=value nor an extent line");
    refused(HEAD "=1\n", "line 3: key missing");
    refused(HEAD "RW x SPARSE \"a\"\n", "line 3: extent size is not a number");
    refused(HEAD "RW -5 SPARSE \"a\"\n", "line 3: extent size");
    refused(HEAD "RW 0 SPARSE \"a\"\n", "line 3: extent of 0 sectors");
    refused(HEAD "RW 99999999999999999999 FLAT \"a\"\n", "line 3: extent size");
    refused(HEAD "RW 100 BOGUS \"a\"\n", "line 3: unknown extent type");
    refused(HEAD "RW 100 FLAT a.vmdk\n", "line 3: extent file name missing");
    refused(HEAD "RW 100 FLAT \"a.vmdk\n", "line 3: extent file name has no closing quote");
    refused(HEAD "RW 100 FLAT \"\"\n", "line 3: empty extent file name");
    refused(HEAD "RW 100 FLAT \"a\" 12x\n", "line 3: extent offset");
    refused(HEAD "RW 100 FLAT \"a\" 12 more\n", "line 3: unexpected text");
    refused(HEAD "RW 100 ZERO \"a\"\n", "line 3: a ZERO extent names no file");
    refused(HEAD "parentFileNameHint=\"\"\n", "line 3: empty parentFileNameHint");
    /* 2^46 + 2^46 + 1 sectors is past 64 PiB: the sum is refused */
    refused(HEAD "RW 70368744177664 ZERO\nRW 70368744177665 ZERO\n", "line 4: extents add up");
}

static void test_too_many_extents(void **state)
{
    (void)state;
    size_t cap = 4100 * 12 + 64;
    char *t = malloc(cap);
    assert_non_null(t);
    size_t n = (size_t)snprintf(t, cap, HEAD);
    for (int i = 0; i < 4097; i++)
        n += (size_t)snprintf(t + n, cap - n, "RW 1 ZERO\n");
    refused(t, "line 4099: more than 4096 extents");
    /* 4096 are fine */
    t[n - 10] = 0;
    struct vmdk_desc d;
    struct scuse_err err;
    assert_int_equal(parse(t, &d, &err), 0);
    assert_int_equal(d.n_ext, 4096);
    vmdk_desc_free(&d);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_and_extents),
        cmocka_unit_test(test_cid_rewrite),
        cmocka_unit_test(test_nul_padding),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_too_many_extents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
