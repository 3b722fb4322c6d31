/* libFuzzer target: scuse's own VHDX parsers (formats/yal/vhdx_bat.c,
 * vhdx_parent.c), which read what libvhdi does not say: the region table,
 * the metadata table and items, the BAT, the parent locator. libvhdi is
 * not called (fuzz it and this target would mostly measure libvhdi).
 *
 * A VHDX puts its region table at 192 KiB and its regions at 1 MiB
 * multiples, too big for a fuzzer's inputs, so the input is laid into a
 * sparse file:
 *   bytes 0..7      the virtual size (le64, at most 1 TiB)
 *   bytes 8..4103   the region table, at 192 KiB; its CRC-32C is made
 *                   right here (a checksum is not what is being fuzzed)
 *   bytes 4104..    at 1 MiB: the metadata region, a BAT, a locator...
 *                   (the file is at least 2 MiB: zeros after the input)
 * Checked besides ASan/UBSan: block status over the whole disk is never
 * empty nor longer than asked, and a locator's paths are terminated. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "yal/vhdx_bat.h"

#define REGION_AT (192u << 10)
#define REGION_SIZE (64u << 10)
#define PAYLOAD_AT (1u << 20)
#define HEAD 8u
#define TABLE 4096u
#define PAYLOAD_MIN (1u << 20)   /* zeros after a short input: the 64 KiB metadata table */

static void die(const char *what)
{
    fprintf(stderr, "fuzz_vhdx: %s\n", what);
    abort();
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void walk(const struct vhdx_bat *b, uint64_t size)
{
    uint64_t off = 0;
    for (int steps = 0; off < size && steps < 4096; steps++) {
        uint64_t len = size - off, pnum = 0;
        struct blk_status st = { 0 };
        vhdx_bat_status(b, off, len, &pnum, &st);
        if (pnum == 0 || pnum > len)
            die("block status empty or longer than asked");
        off += pnum;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEAD + TABLE)
        return 0;
    uint64_t vsize = le64(data) % ((1ull << 40) + 1);
    static uint8_t table[REGION_SIZE];
    memset(table, 0, sizeof(table));
    memcpy(table, data + HEAD, TABLE);
    memset(table + 4, 0, 4);
    uint32_t crc = vhdx_crc32c(table, REGION_SIZE);
    for (int i = 0; i < 4; i++)
        table[4 + i] = (uint8_t)(crc >> (8 * i));

    int fd = memfd_create("fuzz_vhdx", MFD_CLOEXEC);
    if (fd < 0)
        die("memfd_create");
    size_t rest = size - HEAD - TABLE;
    if (pwrite(fd, table, REGION_SIZE, REGION_AT) != REGION_SIZE ||
        (rest && pwrite(fd, data + HEAD + TABLE, rest, PAYLOAD_AT) != (ssize_t)rest) ||
        ftruncate(fd, PAYLOAD_AT + (off_t)(rest > PAYLOAD_MIN ? rest : PAYLOAD_MIN)) < 0)
        die("cannot lay the input out");

    struct vhdx_bat b;
    int r = vhdx_bat_load(fd, vsize, &b);
    if (r == 0) {
        if (vsize)
            walk(&b, vsize);
        vhdx_bat_free(&b);
    }
    struct vhdx_locator loc;
    char why[256];
    if (vhdx_parent_locator(fd, &loc, why, sizeof(why)) == 0) {
        if (!memchr(loc.relative, 0, sizeof(loc.relative)) ||
            !memchr(loc.absolute, 0, sizeof(loc.absolute)) ||
            !memchr(loc.volume, 0, sizeof(loc.volume)))
            die("a locator path without its terminator");
    } else if (!memchr(why, 0, sizeof(why)) || !why[0]) {
        die("a refused locator without a reason");
    }
    close(fd);
    return 0;
}
