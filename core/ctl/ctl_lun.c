/* A LUN as query-luns describes it: the same members whichever transport
 * serves it. */
#include <stdlib.h>
#include <string.h>

#include "blk/blk.h"
#include "ctl/ctl.h"
#include "scsi/dispatch.h"

json_t *ctl_string(const char *text)
{
    if (!text)
        return json_null();
    json_t *j = json_string(text);
    if (j)
        return j;
    char *copy = strdup(text);
    if (!copy)
        return NULL;
    ctl_utf8_clean(copy);
    j = json_string(copy);
    free(copy);
    return j;
}

const char *ctl_device_name(enum ctl_device d)
{
    return d == CTL_DEVICE_CDROM ? "cdrom" : "disk";
}

static json_t *chain_json(struct blk_node *bs)
{
    json_t *a = json_array();
    for (; bs && a; bs = bs->backing)
        json_array_append_new(a, json_pack("{s:o,s:s}", "file", ctl_string(bs->filename),
                                           "format", blk_format_name(bs)));
    return a;
}

static json_t *stats_json(const struct ctl_lun_view *v)
{
    struct scsi_lun_stats st;
    memset(&st, 0, sizeof(st));
    if (v->disp && v->slun)
        scsi_disp_lun_stats(v->disp, v->slun, &st);
    uint64_t bsz = v->slun ? scsi_lun_block_size(v->slun) : 0;
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "commands", (json_int_t)st.commands,
                     "reads", (json_int_t)st.reads, "read-bytes",
                     (json_int_t)(st.read_blocks * bsz), "writes", (json_int_t)st.writes,
                     "written-bytes", (json_int_t)(st.write_blocks * bsz), "flushes",
                     (json_int_t)st.flushes, "errors", (json_int_t)st.errors);
}

/* present, absent or tray-open: a disk has its image, a CD-ROM drive
 * says (the guest may have opened the tray). */
static const char *medium_name(const struct ctl_lun_view *v)
{
    if (v->slun && v->device == CTL_DEVICE_CDROM) {
        switch (scsi_lun_medium_state(v->slun)) {
        case SCSI_MEDIUM_PRESENT: return "present";
        case SCSI_MEDIUM_TRAY_OPEN: return "tray-open";
        case SCSI_MEDIUM_ABSENT: return "absent";
        }
    }
    return v->bs ? "present" : "absent";
}

json_t *ctl_lun_json(const struct ctl_lun_view *v)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "lun", json_integer(v->lun));
    if (v->name)
        json_object_set_new(o, "name", ctl_string(v->name));
    json_object_set_new(o, "device", json_string(ctl_device_name(v->device)));
    json_object_set_new(o, "file", ctl_string(v->file));
    json_object_set_new(o, "format", v->bs ? json_string(blk_format_name(v->bs)) : json_null());
    json_object_set_new(o, "chain", chain_json(v->bs));
    json_object_set_new(o, "size", json_integer(v->bs ? (json_int_t)v->bs->size : 0));
    if (v->slun) {
        json_object_set_new(o, "block-size", json_integer(scsi_lun_block_size(v->slun)));
        json_object_set_new(o, "blocks", json_integer((json_int_t)scsi_lun_blocks(v->slun)));
    }
    bool ro = (v->cfg && v->cfg->read_only) || (v->bs && v->bs->read_only);
    json_object_set_new(o, "read-only", json_boolean(ro));
    json_object_set_new(o, "medium", json_string(medium_name(v)));
    if (v->slun && v->device == CTL_DEVICE_CDROM)
        json_object_set_new(o, "locked", json_boolean(scsi_lun_medium_locked(v->slun)));
    char policy[SCSI_POLICY_TEXT_MAX + 16] = "";
    if (v->cfg)
        scsi_policy_format(v->cfg, ':', policy, sizeof(policy));
    json_object_set_new(o, "policy", json_string(policy));
    json_object_set_new(o, "io", stats_json(v));
    return o;
}
