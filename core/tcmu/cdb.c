#include "tcmu/cdb.h"

#include <string.h>

unsigned tcmu_cdb_len(const uint8_t *cdb, unsigned avail)
{
    /* CDB length by group code (the top three bits of the opcode). */
    static const uint8_t by_group[8] = { 6, 10, 10, 12, 16, 12, 10, 10 };
    if (avail < 1)
        return 0;
    if (cdb[0] == 0x7f)
        return avail < 8 ? 0 : 8u + cdb[7];
    return by_group[cdb[0] >> 5];
}

/* VERIFY's BYTCHK field (byte 1, bits 2:1 in the 10/12/16 forms): zero
 * means the medium is checked alone, without data from the initiator. */
static bool bytchk(const uint8_t *cdb, unsigned len, unsigned byte)
{
    return len > byte && (cdb[byte] & 0x06) != 0;
}

bool tcmu_cdb_data_out(const uint8_t *cdb, unsigned len)
{
    if (len == 0)
        return false;
    switch (cdb[0]) {
    case 0x04: /* FORMAT UNIT (parameter list with FMTDATA) */
    case 0x07: /* REASSIGN BLOCKS */
    case 0x0a: /* WRITE(6) */
    case 0x15: /* MODE SELECT(6) */
    case 0x18: /* COPY */
    case 0x1d: /* SEND DIAGNOSTIC */
    case 0x2a: /* WRITE(10) */
    case 0x2e: /* WRITE AND VERIFY(10) */
    case 0x39: /* COMPARE */
    case 0x3a: /* COPY AND VERIFY */
    case 0x3b: /* WRITE BUFFER */
    case 0x3d: /* UPDATE BLOCK */
    case 0x3f: /* WRITE LONG(10) */
    case 0x41: /* WRITE SAME(10) */
    case 0x42: /* UNMAP */
    case 0x4c: /* LOG SELECT */
    case 0x55: /* MODE SELECT(10) */
    case 0x5f: /* PERSISTENT RESERVE OUT */
    case 0x83: /* EXTENDED COPY and the other third-party copy OUT commands */
    case 0x89: /* COMPARE AND WRITE */
    case 0x8a: /* WRITE(16) */
    case 0x8c: /* WRITE ATTRIBUTE */
    case 0x8e: /* WRITE AND VERIFY(16) */
    case 0x93: /* WRITE SAME(16) */
    case 0x9a: /* WRITE STREAM(16) */
    case 0x9c: /* WRITE ATOMIC(16) */
    case 0x9f: /* SERVICE ACTION OUT(16): WRITE LONG(16), ... */
    case 0xa4: /* MAINTENANCE OUT: SET TARGET PORT GROUPS, ... */
    case 0xaa: /* WRITE(12) */
    case 0xae: /* WRITE AND VERIFY(12) */
    case 0xb5: /* SECURITY PROTOCOL OUT */
    case 0xb6: /* SEND VOLUME TAG / SET STREAMING */
        return true;
    case 0x2f: /* VERIFY(10) */
    case 0x8f: /* VERIFY(16) */
    case 0xaf: /* VERIFY(12) */
        return bytchk(cdb, len, 1);
    case 0x7f: { /* variable length: the service action says */
        if (len < 10)
            return false;
        unsigned sa = (unsigned)cdb[8] << 8 | cdb[9];
        if (sa == 0x000a) /* VERIFY(32) */
            return bytchk(cdb, len, 10);
        return sa == 0x000b || sa == 0x000c || sa == 0x000d; /* WRITE, WRITE AND VERIFY,
                                                                WRITE SAME (32) */
    }
    default:
        return false;
    }
}

unsigned tcmu_sense_fixed(uint8_t *buf, uint8_t key, uint8_t asc, uint8_t ascq)
{
    memset(buf, 0, TCMU_SENSE_FIXED_LEN);
    buf[0] = 0x70;
    buf[2] = key;
    buf[7] = TCMU_SENSE_FIXED_LEN - 8;
    buf[12] = asc;
    buf[13] = ascq;
    return TCMU_SENSE_FIXED_LEN;
}
