/* READ DEFECT DATA (10) and (12): an image has no grown or primary defect
 * list, so both lists are reported as there and empty, in the format
 * asked for. */
#include <string.h>

#include "scsi/scsi_int.h"

SCSI_HANDLER(sbc_prep_read_defect_data)
{
    (void)lun;
    bool twelve = cmd->cdb[0] == OP_READ_DEFECT_DATA12;
    uint8_t req = twelve ? cmd->cdb[1] : cmd->cdb[2];
    size_t alloc = twelve ? get_be32(cmd->cdb + 6) : get_be16(cmd->cdb + 7);
    /* (12): any ADDRESS DESCRIPTOR INDEX is past the empty list: the
     * header alone either way. */
    uint8_t b[8];
    memset(b, 0, sizeof(b));
    /* PLISTV and GLISTV for the lists asked for; the format echoed. */
    b[1] = (uint8_t)(req & 0x1f);
    /* DEFECT LIST LENGTH 0; (12): GENERATION CODE 0 (not reported). */
    scsi_reply(cmd, b, twelve ? 8 : 4, alloc);
}
