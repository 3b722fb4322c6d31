/* libvirt's format names and scuse's, in one table. scuse's registry uses
 * QEMU's driver names; libvirt uses its own, and two differ: libvirt 9.0
 * calls VHDX "vhd" (and rejects "vhdx"), VHD being "vpc" in both. Names
 * libvirt has that scuse has no driver for at all (luks, iso, bochs...)
 * are not in the table: such a disk is refused when it is parsed. */
#include <string.h>

#include "domain/domain.h"

static const struct {
    const char *libvirt, *scuse;
} formats[] = {
    { "raw", "raw" },
    { "qcow2", "qcow2" },
    { "qcow", "qcow" },
    { "vmdk", "vmdk" },
    { "vpc", "vpc" },               /* VHD */
    { "vhd", "vhdx" },              /* libvirt's name for VHDX */
    { "qed", "qed" },
    { "vdi", "vdi" },
};

const char *dom_format_from_libvirt(const char *name)
{
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
        if (strcmp(formats[i].libvirt, name) == 0)
            return formats[i].scuse;
    return NULL;
}

const char *dom_format_libvirt_names(void)
{
    return "raw, qcow2, qcow, vmdk, vpc (VHD), vhd (VHDX), qed, vdi";
}
