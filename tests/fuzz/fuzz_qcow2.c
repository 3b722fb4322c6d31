/* libFuzzer target: open any byte string as a qcow2 image and read it
 * (the harness and the contracts it checks: fuzz_image.h). An external
 * data file (incompatible bit 2) names a host path: the harness redirects
 * it to the image, so the data-file code runs with the image as its own
 * data file. A small L2 cache makes the cache's eviction paths run. */
#define _GNU_SOURCE
#define FUZZ_NAME "fuzz_qcow2"
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct blk_opts opts = { .fmt = { .n = 1, .kv = { { "l2-cache-size", "8192" } } } };
    return fuzz_image_run("qcow2", &opts, data, size);
}
