/* libFuzzer target: open any byte string as a VHD (vpc) image and read it
 * (the harness and the contracts it checks: fuzz_image.h). A differencing
 * disk names its parent through locators; the driver looks for those files
 * next to the image, and the harness redirects them to the image, so the
 * parent search runs against the image. */
#define _GNU_SOURCE
#define FUZZ_NAME "fuzz_vhd"
#include "fuzz_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_image_run("vpc", NULL, data, size);
}
