/* What TCMU leaves to userspace about a CDB: a ring entry says where the
 * CDB is and where the data is, but neither the CDB's length nor the
 * direction of the data. Both follow from the opcode, as the kernel
 * derives them (scsi_command_size) and as SPC/SBC define them. */
#ifndef SCUSE_TCMU_CDB_H
#define SCUSE_TCMU_CDB_H

#include <stdbool.h>
#include <stdint.h>

/* Largest CDB the kernel can put on the ring: a variable-length CDB
 * (opcode 7Fh) of 8 + 255 bytes. */
#define TCMU_CDB_LEN_MAX 263

/* The length of a CDB starting with these bytes. avail: how many bytes
 * of it can be read (at least 1); a variable-length CDB needs byte 7 to
 * know its length, and returns 0 when fewer than 8 bytes are available. */
unsigned tcmu_cdb_len(const uint8_t *cdb, unsigned avail);

/* Whether the command's data, if it has any, flows to the device
 * (data-out: WRITE, UNMAP, MODE SELECT, VERIFY with BYTCHK, ...). Every
 * other command with data is data-in. */
bool tcmu_cdb_data_out(const uint8_t *cdb, unsigned len);

/* Fixed-format sense data (18 bytes, current error) for answers the
 * transport gives itself, before or without the SCSI layer. */
#define TCMU_SENSE_FIXED_LEN 18
unsigned tcmu_sense_fixed(uint8_t *buf, uint8_t key, uint8_t asc, uint8_t ascq);

#endif
