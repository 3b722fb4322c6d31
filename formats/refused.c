/* Formats scuse recognises but does not serve yet. Each is probed by its
 * magic so that an image of it is never mistaken for raw (a guest would
 * see the metadata as its disk, and its first write would destroy the
 * image); opening one is refused by name. When a format gets a driver of
 * its own, its entry here goes and the registry names the new driver. */
#include <string.h>

#include "blk/driver.h"

static bool starts(const uint8_t *buf, size_t len, const char *magic, size_t mlen)
{
    return len >= mlen && memcmp(buf, magic, mlen) == 0;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int qed_probe(const struct blk_probe *p)
{
    return starts(p->head, p->head_len, "QED\0", 4) ? 100 : 0;
}

static int vdi_probe(const struct blk_probe *p)
{
    return p->head_len >= 0x44 && le32(p->head + 0x40) == 0xbeda107fu ? 100 : 0;
}

const struct blk_driver blk_driver_qed_refused = {
    .name = "qed", .description = "QEMU enhanced disk", .unsupported = "QED", .probe = qed_probe,
};
const struct blk_driver blk_driver_vdi_refused = {
    .name = "vdi", .description = "VirtualBox disk", .unsupported = "VDI", .probe = vdi_probe,
};
