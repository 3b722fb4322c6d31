/* VHD footer and dynamic header: byte layout, checksums, the CHS geometry
 * and the virtual size as QEMU derives it from the footer. */
#include <stdio.h>
#include <string.h>

#include "vhd/vhd.h"

/* Ones' complement of the byte sum, the checksum field counted as zero. */
uint32_t vhd_checksum(const uint8_t *buf, size_t len, size_t csum_off)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i++)
        if (i < csum_off || i >= csum_off + 4)
            sum += buf[i];
    return ~sum;
}

void vhd_footer_decode(const uint8_t *b, struct vhd_footer *f)
{
    f->features = vhd_be32(b + 8);
    f->version = vhd_be32(b + 12);
    f->data_offset = vhd_be64(b + 16);
    f->timestamp = vhd_be32(b + 24);
    memcpy(f->creator_app, b + 28, 4);
    f->creator_version = vhd_be32(b + 32);
    memcpy(f->creator_os, b + 36, 4);
    f->orig_size = vhd_be64(b + 40);
    f->cur_size = vhd_be64(b + 48);
    f->cyls = vhd_be16(b + 56);
    f->heads = b[58];
    f->secs = b[59];
    f->type = vhd_be32(b + 60);
    f->checksum = vhd_be32(b + 64);
    memcpy(f->uuid, b + 68, 16);
    f->saved_state = b[84];
}

/* Fields over b (whose reserved bytes are kept), checksum recomputed. */
void vhd_footer_encode(const struct vhd_footer *f, uint8_t *b)
{
    memcpy(b, VHD_COOKIE, 8);
    vhd_put_be32(b + 8, f->features);
    vhd_put_be32(b + 12, f->version);
    vhd_put_be64(b + 16, f->data_offset);
    vhd_put_be32(b + 24, f->timestamp);
    memcpy(b + 28, f->creator_app, 4);
    vhd_put_be32(b + 32, f->creator_version);
    memcpy(b + 36, f->creator_os, 4);
    vhd_put_be64(b + 40, f->orig_size);
    vhd_put_be64(b + 48, f->cur_size);
    vhd_put_be16(b + 56, f->cyls);
    b[58] = f->heads;
    b[59] = f->secs;
    vhd_put_be32(b + 60, f->type);
    memcpy(b + 68, f->uuid, 16);
    b[84] = f->saved_state;
    vhd_put_be32(b + 64, vhd_checksum(b, VHD_FOOTER_SIZE, 64));
}

void vhd_dyn_decode(const uint8_t *b, struct vhd_dyn_header *h)
{
    h->data_offset = vhd_be64(b + 8);
    h->table_offset = vhd_be64(b + 16);
    h->version = vhd_be32(b + 24);
    h->max_entries = vhd_be32(b + 28);
    h->block_size = vhd_be32(b + 32);
    h->checksum = vhd_be32(b + 36);
    memcpy(h->parent_uuid, b + 40, 16);
    h->parent_ts = vhd_be32(b + 56);
    memcpy(h->parent_name, b + 64, 512);
    for (int i = 0; i < VHD_NLOC; i++) {
        const uint8_t *l = b + 576 + 24 * i;
        h->loc[i].code = vhd_be32(l);
        h->loc[i].space = vhd_be32(l + 4);
        h->loc[i].length = vhd_be32(l + 8);
        h->loc[i].offset = vhd_be64(l + 16);
    }
}

void vhd_dyn_encode(const struct vhd_dyn_header *h, uint8_t *b)
{
    memcpy(b, VHD_DYN_COOKIE, 8);
    vhd_put_be64(b + 8, h->data_offset);
    vhd_put_be64(b + 16, h->table_offset);
    vhd_put_be32(b + 24, h->version);
    vhd_put_be32(b + 28, h->max_entries);
    vhd_put_be32(b + 32, h->block_size);
    memcpy(b + 40, h->parent_uuid, 16);
    vhd_put_be32(b + 56, h->parent_ts);
    memcpy(b + 64, h->parent_name, 512);
    for (int i = 0; i < VHD_NLOC; i++) {
        uint8_t *l = b + 576 + 24 * i;
        vhd_put_be32(l, h->loc[i].code);
        vhd_put_be32(l + 4, h->loc[i].space);
        vhd_put_be32(l + 8, h->loc[i].length);
        vhd_put_be32(l + 12, 0);
        vhd_put_be64(l + 16, h->loc[i].offset);
    }
    vhd_put_be32(b + 36, vhd_checksum(b, VHD_DYN_HEADER_SIZE, 36));
}

/* Virtual PC sizes a disk by its geometry; Hyper-V, disk2vhd, XenServer,
 * XenConverter and QEMU's force_size by current_size. A disk at the
 * largest geometry cannot be described by it, so current_size is used. */
uint64_t vhd_virtual_size(const struct vhd_footer *f, bool *from_chs)
{
    static const char *const by_size[] = { "win ", "qem2", "d2v ", "CTXS" };
    bool chs = true;
    for (size_t i = 0; i < sizeof(by_size) / sizeof(by_size[0]); i++)
        if (memcmp(f->creator_app, by_size[i], 4) == 0)
            chs = false;
    if (memcmp(f->creator_app, "tap\0", 4) == 0)
        chs = false;
    uint64_t sectors = (uint64_t)f->cyls * f->heads * f->secs;
    if (!chs || sectors == VHD_MAX_GEOMETRY) {
        *from_chs = false;
        return f->cur_size / VHD_SECTOR * VHD_SECTOR;
    }
    *from_chs = true;
    return sectors * VHD_SECTOR;
}

/* The algorithm of the VHD specification (appendix "CHS calculation"). */
void vhd_geometry(uint64_t total, uint16_t *c, uint8_t *h, uint8_t *s)
{
    uint64_t cth;
    uint32_t spt, heads;
    if (total > VHD_MAX_GEOMETRY)
        total = VHD_MAX_GEOMETRY;
    if (total >= (uint64_t)VHD_CHS_MAX_C * 16 * 63) {
        spt = 255;
        heads = 16;
        cth = total / spt;
    } else {
        spt = 17;
        cth = total / spt;
        heads = (uint32_t)((cth + 1023) / 1024);
        if (heads < 4)
            heads = 4;
        if (cth >= heads * 1024ull || heads > 16) {
            spt = 31;
            heads = 16;
            cth = total / spt;
        }
        if (cth >= heads * 1024ull) {
            spt = 63;
            heads = 16;
            cth = total / spt;
        }
    }
    *c = (uint16_t)(cth / heads);
    *h = (uint8_t)heads;
    *s = (uint8_t)spt;
}

void vhd_creator_text(const uint8_t app[4], char out[5])
{
    int n = 4;
    while (n > 0 && (app[n - 1] == 0 || app[n - 1] == ' '))
        n--;
    for (int i = 0; i < n; i++)
        out[i] = app[i] >= 0x20 && app[i] < 0x7f ? (char)app[i] : '?';
    out[n] = '\0';
}

const char *vhd_type_name(uint32_t type)
{
    switch (type) {
    case VHD_TYPE_FIXED: return "fixed";
    case VHD_TYPE_DYNAMIC: return "dynamic";
    case VHD_TYPE_DIFF: return "differencing";
    }
    return "unknown";
}

/* The 16 bytes in the order they are stored, as hex groups 4-2-2-2-6. */
void vhd_uuid_text(const uint8_t u[16], char out[37])
{
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
             u[13], u[14], u[15]);
}
