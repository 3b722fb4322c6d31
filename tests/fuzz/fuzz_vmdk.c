/* libFuzzer target: VMDK descriptor parsing, and any byte string opened
 * as a VMDK image (a KDMV sparse or stream file, or descriptor text) and
 * read.
 *
 * First the input is parsed as descriptor text on its own (vmdk_desc_parse;
 * when it parses, the CID rewrite must parse again to the same extents).
 * Then the shared harness (fuzz_image.h: the contracts it checks) opens and
 * reads it as a VMDK image. A descriptor names extent files by path; the
 * harness redirects every one to the image, so the extent code runs with
 * the image as every extent file. */
#define _GNU_SOURCE
#define FUZZ_NAME "fuzz_vmdk"
#include "fuzz_image.h"
#include "vmdk/vmdk.h"

/* The parser alone: a descriptor that parses keeps parsing the same
 * after its CID is rewritten. */
static void desc_pass(const uint8_t *data, size_t size)
{
    struct vmdk_desc d, d2;
    struct scuse_err err = { 0 };
    if (vmdk_desc_parse((const char *)data, size, "fuzz", &d, &err) < 0) {
        if (!err.msg[0])
            fuzz_die("descriptor refused without a message", size, 0);
        return;
    }
    size_t n = 0;
    char *t = vmdk_desc_with_cid(&d, 0x5c05e001u, &n);
    if (t) {
        if (vmdk_desc_parse(t, n, "fuzz", &d2, &err) < 0)
            fuzz_die("the CID rewrite broke a descriptor", size, n);
        if (d2.cid != 0x5c05e001u || d2.n_ext != d.n_ext || d2.total_sectors != d.total_sectors)
            fuzz_die("the CID rewrite changed the descriptor", d.n_ext, d2.n_ext);
        vmdk_desc_free(&d2);
        free(t);
    }
    vmdk_desc_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    desc_pass(data, size);
    return fuzz_image_run("vmdk", NULL, data, size);
}
