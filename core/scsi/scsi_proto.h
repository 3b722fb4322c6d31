/* SCSI protocol constants (SPC-4/5, SBC-3/4, SAM-5): opcodes, service
 * actions, sense keys, additional sense codes, page codes. Written from
 * the standards' tables; internal to core/scsi. */
#ifndef SCUSE_SCSI_PROTO_H
#define SCUSE_SCSI_PROTO_H

#include <stdint.h>

/* Operation codes */
#define OP_TEST_UNIT_READY 0x00
#define OP_REQUEST_SENSE 0x03
#define OP_READ6 0x08
#define OP_WRITE6 0x0a
#define OP_INQUIRY 0x12
#define OP_MODE_SELECT6 0x15
#define OP_MODE_SENSE6 0x1a
#define OP_START_STOP_UNIT 0x1b
#define OP_PREVENT_ALLOW 0x1e
#define OP_READ_CAPACITY10 0x25
#define OP_READ10 0x28
#define OP_WRITE10 0x2a
#define OP_WRITE_VERIFY10 0x2e
#define OP_VERIFY10 0x2f
#define OP_PRE_FETCH10 0x34
#define OP_SYNC_CACHE10 0x35
#define OP_WRITE_SAME10 0x41
#define OP_UNMAP 0x42
#define OP_READ_DEFECT_DATA10 0x37
#define OP_SANITIZE 0x48
#define OP_MODE_SELECT10 0x55
#define OP_MODE_SENSE10 0x5a
#define OP_READ16 0x88
#define OP_COMPARE_AND_WRITE 0x89
#define OP_WRITE16 0x8a
#define OP_ORWRITE16 0x8b
#define OP_WRITE_ATOMIC16 0x9c
#define OP_EXTENDED_COPY 0x83
#define OP_RECEIVE_COPY_RESULTS 0x84
#define OP_WRITE_VERIFY16 0x8e
#define OP_VERIFY16 0x8f
#define OP_PRE_FETCH16 0x90
#define OP_SYNC_CACHE16 0x91
#define OP_WRITE_SAME16 0x93
#define OP_SERVICE_ACTION_IN16 0x9e
#define OP_REPORT_LUNS 0xa0
#define OP_MAINTENANCE_IN 0xa3
#define OP_READ12 0xa8
#define OP_WRITE12 0xaa
#define OP_WRITE_VERIFY12 0xae
#define OP_VERIFY12 0xaf
#define OP_READ_DEFECT_DATA12 0xb7

/* Service actions */
#define SA_READ_CAPACITY16 0x10
#define SA_GET_LBA_STATUS 0x12
#define SA_REPORT_SUPPORTED_OPCODES 0x0c
#define SA_REPORT_SUPPORTED_TMF 0x0d

/* Sense keys */
#define SK_NO_SENSE 0x0
#define SK_RECOVERED_ERROR 0x1
#define SK_NOT_READY 0x2
#define SK_MEDIUM_ERROR 0x3
#define SK_HARDWARE_ERROR 0x4
#define SK_ILLEGAL_REQUEST 0x5
#define SK_UNIT_ATTENTION 0x6
#define SK_DATA_PROTECT 0x7
#define SK_COPY_ABORTED 0xa
#define SK_ABORTED_COMMAND 0xb
#define SK_MISCOMPARE 0xe

/* Additional sense code and qualifier, as ASC << 8 | ASCQ */
#define ASC_NO_ADDITIONAL_SENSE 0x0000
#define ASC_LUN_NOT_READY_INIT_REQUIRED 0x0402  /* INITIALIZING COMMAND REQUIRED */
#define ASC_LUN_NOT_READY_SANITIZE 0x041b       /* SANITIZE IN PROGRESS */
#define ASC_WRITE_ERROR 0x0c00
#define ASC_UNRECOVERED_READ_ERROR 0x1100
#define ASC_PARAMETER_LIST_LENGTH_ERROR 0x1a00
#define ASC_MISCOMPARE_DURING_VERIFY 0x1d00
#define ASC_INVALID_COMMAND_OPCODE 0x2000
#define ASC_LBA_OUT_OF_RANGE 0x2100
#define ASC_INVALID_FIELD_IN_CDB 0x2400
#define ASC_LUN_NOT_SUPPORTED 0x2500
#define ASC_INVALID_FIELD_IN_PARAM_LIST 0x2600
#define ASC_WRITE_PROTECTED 0x2700
#define ASC_SOFTWARE_WRITE_PROTECTED 0x2702
#define ASC_SPACE_ALLOC_FAILED_WP 0x2707
#define ASC_POWER_ON_RESET 0x2900
#define ASC_I_T_NEXUS_LOSS 0x2907
#define ASC_MODE_PARAMETERS_CHANGED 0x2a01
#define ASC_CAPACITY_DATA_CHANGED 0x2a09
#define ASC_SAVING_PARAMS_UNSUPPORTED 0x3900
#define ASC_MEDIUM_NOT_PRESENT 0x3a00
#define ASC_REPORTED_LUNS_CHANGED 0x3f0e
#define ASC_INTERNAL_TARGET_FAILURE 0x4400

/* Sense data formats */
#define SENSE_FIXED_CURRENT 0x70
#define SENSE_DESC_CURRENT 0x72
#define SENSE_FIXED_LEN 18
#define SENSE_DESC_INFO 0x00      /* information descriptor type */
#define SENSE_DESC_SKS 0x02       /* sense-key-specific descriptor type */

/* VPD pages */
#define VPD_SUPPORTED 0x00
#define VPD_UNIT_SERIAL 0x80
#define VPD_DEVICE_ID 0x83
#define VPD_BLOCK_LIMITS 0xb0
#define VPD_BLOCK_CHARACTERISTICS 0xb1
#define VPD_LB_PROVISIONING 0xb2

/* Mode pages */
#define MPAGE_RW_ERROR_RECOVERY 0x01
#define MPAGE_CACHING 0x08
#define MPAGE_CONTROL 0x0a
#define MPAGE_ALL 0x3f
#define MSUB_ALL 0xff

/* Mode sense page control */
#define MPC_CURRENT 0
#define MPC_CHANGEABLE 1
#define MPC_DEFAULT 2
#define MPC_SAVED 3

/* Version descriptors (standard INQUIRY) */
#define VERSION_SAM5 0x00a0
#define VERSION_SPC4 0x0460
#define VERSION_SBC3 0x04c0

/* Big-endian field access */
static inline uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get_be24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}
static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}
static inline void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

#endif
