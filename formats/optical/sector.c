/* Whole 2352-byte Mode 1 sectors around 2048 bytes of user data, as a
 * drive reads them off a pressed disc (READ CD with every field): the
 * error detection and correction bytes are computed as ECMA-130 (annex
 * A: EDC; annex B: the Reed-Solomon product code, P then Q) defines
 * them, so tools that check sectors accept them. */
#include <string.h>

#include "optical/disc.h"

/* EDC: CRC-32, polynomial (x^16 + x^15 + x^2 + 1)(x^16 + x^2 + x + 1),
 * least significant bit first (reflected 0xD8018001), no inversion. */
uint32_t optical_edc(const uint8_t *p, size_t len)
{
    uint32_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ ((crc & 1) ? 0xd8018001u : 0);
    }
    return crc;
}

/* GF(2^8) with the primitive polynomial x^8 + x^4 + x^3 + x^2 + 1. */
static uint8_t gf_mul2(uint8_t a)
{
    return (uint8_t)((a << 1) ^ ((a & 0x80) ? 0x1d : 0));
}

static uint8_t gf_div3(uint8_t a)
{
    /* The b with b * 3 = a, i.e. mul2(b) ^ b = a: search, 256 values. */
    static uint8_t inv[256];
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        uint8_t t[256];
        for (unsigned b = 0; b < 256; b++)
            t[gf_mul2((uint8_t)b) ^ b] = (uint8_t)b;
        /* Every thread computes the same table: a benign repeat. */
        for (unsigned i = 0; i < 256; i++)
            __atomic_store_n(&inv[i], t[i], __ATOMIC_RELAXED);
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    return __atomic_load_n(&inv[a], __ATOMIC_RELAXED);
}

/* The parity of one of the product code's two codes over the 2340 bytes
 * from the header on (ECMA-130 annex B). The bytes form two planes (even
 * and odd offsets) of words; codeword `major` takes minor_count symbols
 * starting at its column, minor_inc apart (modulo the plane: P walks
 * columns of 43 x 24, Q the diagonals). Its two check symbols, stored at
 * dest[major] and dest[major + major_count], make both syndromes zero:
 * the sum of the symbols and their sum weighted by powers of alpha. */
static void rs_parity(uint8_t *sector, unsigned major_count, unsigned minor_count,
                      unsigned major_mult, unsigned minor_inc, uint8_t *dest)
{
    const uint8_t *src = sector + 12;
    unsigned size = major_count * minor_count;
    for (unsigned major = 0; major < major_count; major++) {
        unsigned index = (major >> 1) * major_mult + (major & 1);
        uint8_t a = 0, b = 0;
        for (unsigned minor = 0; minor < minor_count; minor++) {
            uint8_t v = src[index];
            index += minor_inc;
            if (index >= size)
                index -= size;
            a ^= v;
            b ^= v;
            a = gf_mul2(a);
        }
        /* a: the symbols weighted by powers of alpha (Horner), b: their
         * sum; the checks c0, c1 with c0 ^ c1 = b and alpha*c0 ^ c1 =
         * alpha*a give c0 = (alpha*a ^ b) / (alpha ^ 1), alpha ^ 1 = 3. */
        a = gf_div3((uint8_t)(gf_mul2(a) ^ b));
        dest[major] = a;
        dest[major + major_count] = (uint8_t)(a ^ b);
    }
}

static uint8_t bcd(uint8_t v) { return (uint8_t)((v / 10) << 4 | (v % 10)); }

void optical_mode1_sector(uint32_t lba, const uint8_t *user, uint8_t *raw)
{
    memset(raw, 0, OPTICAL_RAW);
    memset(raw + 1, 0xff, 10);      /* sync: 00, ten FFh, 00 */
    uint8_t m, s, f;
    optical_msf(lba, &m, &s, &f);
    raw[12] = bcd(m);
    raw[13] = bcd(s);
    raw[14] = bcd(f);
    raw[15] = 0x01;                 /* mode 1 */
    memcpy(raw + 16, user, OPTICAL_USER);
    uint32_t edc = optical_edc(raw, 0x810);
    raw[0x810] = (uint8_t)edc;
    raw[0x811] = (uint8_t)(edc >> 8);
    raw[0x812] = (uint8_t)(edc >> 16);
    raw[0x813] = (uint8_t)(edc >> 24);
    /* P: 86 columns of 24 (+2 parity) over header..EDC; Q: 52 diagonals
     * of 43 (+2) over header..P. */
    rs_parity(raw, 86, 24, 2, 86, raw + 0x81c);
    rs_parity(raw, 52, 43, 86, 88, raw + 0x8c8);
}
