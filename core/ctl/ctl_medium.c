/* medium-eject and medium-insert on a CD-ROM LUN: the same steps whichever
 * transport serves it; the transport keeps its own record of the file. */
#include <errno.h>

#include "blk/blk.h"
#include "blk/format.h"
#include "ctl/ctl.h"
#include "scsi/scsi.h"

int ctl_medium_eject(struct ctl_server *ctl, struct scsi_lun *lun, uint16_t id, bool force,
                     struct scuse_err *err)
{
    struct blk_node *old = NULL;
    int r = scsi_lun_medium_eject(lun, force, &old, err);
    if (r < 0)
        return r == -ENODEV ? -EIO : r;
    blk_close(old);                 /* nobody reads it: the eject drained its readers */
    ctl_server_event(ctl, "MEDIUM_EJECTED", json_pack("{s:i}", "lun", id));
    return 0;
}

int ctl_medium_insert(struct ctl_server *ctl, struct scsi_lun *lun, uint16_t id,
                      const char *file, const char *format, struct blk_node **out,
                      struct scuse_err *err)
{
    *out = NULL;
    if (format && !blk_format_has(format, BLK_FMT_KNOWN)) {
        char list[256];
        blk_format_list(BLK_FMT_OPEN, list, sizeof(list));
        return err_set(err, -EINVAL, "unknown format '%s' (scuse serves: %s)", format, list);
    }
    struct blk_node *bs = NULL;
    int r = blk_open(file, format, 0, NULL, &bs, err);
    if (r == 0)
        r = scsi_lun_medium_insert(lun, bs, err);
    if (r < 0) {
        blk_close(bs);
        return r == -ENODEV ? -EINVAL : r;
    }
    ctl_server_event(ctl, "MEDIUM_INSERTED",
                     json_pack("{s:i,s:o,s:s}", "lun", id, "file", ctl_string(file), "format",
                               blk_format_name(bs)));
    *out = bs;
    return 0;
}
