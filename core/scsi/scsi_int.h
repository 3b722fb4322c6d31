/* Internals of the SCSI emulation: the LUN, the command table and the
 * helpers every command uses to answer (status, sense, residual). */
#ifndef SCUSE_SCSI_INT_H
#define SCUSE_SCSI_INT_H

#include <stddef.h>

#include "scsi/scsi.h"
#include "scsi/scsi_proto.h"

#define SCSI_CDB_MAX 16
#define SCSI_NO_SA 0xffff

/* Limits the LUN reports (VPD B0) and enforces. */
#define SCSI_MAX_XFER_BYTES (32u << 20)        /* READ/WRITE/VERIFY */
#define SCSI_MAX_WS_BYTES (256ull << 20)       /* WRITE SAME */
/* MAXIMUM UNMAP LBA COUNT (SBC-4 6.6.4): the LBAs one UNMAP command may
 * name, all its descriptors together; 1 GiB, and at most 2^20 blocks (what
 * initiators check as sane, libiscsi among them; 512 MiB of 512-byte blocks). */
#define SCSI_MAX_UNMAP_BYTES (1ull << 30)
#define SCSI_MAX_UNMAP_LBAS (1ull << 20)
static inline uint64_t scsi_max_unmap_blocks(unsigned shift)
{
    uint64_t n = SCSI_MAX_UNMAP_BYTES >> shift;
    return n < SCSI_MAX_UNMAP_LBAS ? n : SCSI_MAX_UNMAP_LBAS;
}
#define SCSI_MAX_UNMAP_DESC 256
#define SCSI_MAX_CAW_BLOCKS 255                /* COMPARE AND WRITE */
#define SCSI_MAX_PREFETCH_BYTES (16u << 20)    /* PRE-FETCH that gets CONDITION MET */
#define SCSI_MAX_LBA_STATUS_DESC 4096          /* GET LBA STATUS descriptors per answer */
#define SCSI_SCRATCH 8192                      /* stack chunk for compare and verify */
#define SCSI_MAX_ATOMIC_BYTES (1u << 20)       /* WRITE ATOMIC (VPD B0) */

/* IEEE company ID for derived NAA 6 designators: a CID-form value (its
 * first octet ends in binary 1010, the locally administered pattern), so
 * it cannot collide with a registered OUI. A configured WWN replaces it. */
#define SCUSE_NAA_COMPANY_ID 0x5ac5e0u

struct scsi_op;
struct optical_disc;

struct scsi_lun {
    struct scsi_lun_config cfg;
    const struct scsi_op *ops;      /* the command table of its device type */
    unsigned n_ops;
    struct blk_node *bs;            /* NULL: no medium (cdrom); see medium.c for when it
                                       may be read */
    uint16_t id;
    uint64_t blocks;
    uint32_t block_size;
    unsigned shift;                 /* log2(block_size) */
    bool read_only;                 /* configured or the image is */
    bool lbpme, lbprz;
    uint32_t unmap_gran;            /* optimal unmap granularity, blocks */
    char serial[65];                /* VPD 80: configured or derived */
    uint8_t naa[16];                /* VPD 83 NAA designator */
    uint8_t naa_len;                /* 8 or 16 */
    struct scsi_disp_lun *disp;
    const struct scsi_target *target; /* the target it belongs to, or NULL */

    pthread_mutex_t lock;
    /* Under lock. wce and d_sense are also read without it (atomic
     * loads) on the data path; they are only written under it. */
    unsigned ua;                    /* pending unit attentions, 1 << enum scsi_ua */
    bool wce, d_sense;
    bool swp;                       /* control page SWP: software write protect */
    bool sanitizing;                /* a SANITIZE runs (atomic) */
    bool sanitize_thread_live;      /* sanitize_thread to join */
    pthread_t sanitize_thread;
    /* A SANITIZE without IMMED waits for its thread here; an abort or a
     * reset naming it lets the command end while the sanitize goes on.
     * sanitize_lock is taken alone or under the dispatcher's lock. */
    pthread_mutex_t sanitize_lock;
    pthread_cond_t sanitize_cv;
    struct sanitize_job *sanitize_waiter; /* the job a command waits for, or NULL */
    struct {                        /* the last EXTENDED COPY held (under lock) */
        bool held, failed;
        uint8_t list_id;
        uint16_t segments;
        uint64_t bytes;             /* copied, whatever the LUNs' block sizes */
    } xcopy;
    bool stopped;                   /* START STOP UNIT with START=0 */
    bool prevent;                   /* PREVENT ALLOW MEDIUM REMOVAL state */

    /* Removable medium (cdrom; medium.c). ready says the medium may be
     * read (in, tray closed, no eject under way): commands check it after
     * counting themselves in users, an eject clears it and waits for users
     * to drain. tray_open, changing, media_event, event cb under lock. */
    bool removable;
    bool ready;
    unsigned users;
    unsigned ejecting;              /* eject callers waiting on medium_idle */
    pthread_cond_t medium_idle;
    bool tray_open;
    bool changing;                  /* an eject or insert is under way */
    uint8_t media_event;            /* GESN event code pending (0: none) */
    struct optical_disc *disc;      /* the medium's tracks (with bs; read by the holders) */
    void (*event_cb)(void *opaque, struct scsi_lun *lun, int event);
    void *event_opaque;

    /* I/O error logging, limited per LUN (atomics; sense.c). */
    uint64_t errlog_window;         /* second the current window started */
    unsigned errlog_count;          /* lines logged in it */
    unsigned errlog_dropped;        /* lines left out since the last note */
};

/* Command table entry. usage[] is the CDB usage data RSOC reports: the
 * bits the device server evaluates. ignore[] holds bits accepted and not
 * acted on (DPO, group number). Any other bit set in the CDB is refused
 * with INVALID FIELD IN CDB before the command's prepare runs. cont[]
 * marks bits that continue the field to their left, so the sense bit
 * pointer names a multi-bit field by its left-most bit. */
enum {
    OPF_NO_UA = 1u << 0,            /* served with a unit attention pending */
    OPF_MEDIUM = 1u << 1,           /* NOT READY while the unit is stopped */
    OPF_NEEDS_DISCARD = 1u << 2,    /* served only with discard on */
    OPF_DATA_IN = 1u << 3,          /* its data, if any, flows to the initiator */
    OPF_DATA_OUT = 1u << 4,         /* its data, if any, flows to the device */
};

struct scsi_op {
    const char *name;
    uint8_t opcode;
    uint16_t sa;                    /* SCSI_NO_SA for plain opcodes */
    uint8_t cdb_len;
    unsigned flags;
    uint16_t timeout;               /* recommended timeout (s), RSOC's RCTD */
    uint8_t usage[SCSI_CDB_MAX];
    uint8_t ignore[SCSI_CDB_MAX];
    uint8_t cont[SCSI_CDB_MAX];
    /* Validate the CDB; answer (access stays DONE), or set the range and,
     * as the last step after every check, the access execute needs. */
    void (*prepare)(struct scsi_lun *lun, struct scsi_cmd *cmd);
    /* Run it (only when prepare left access other than DONE). */
    void (*execute)(struct scsi_lun *lun, struct scsi_cmd *cmd);
};

extern const struct scsi_op scsi_ops[];
extern const unsigned scsi_n_ops;

/* The table entry for opcode/sa (sa ignored for plain opcodes), or NULL. */
const struct scsi_op *scsi_op_find(uint8_t opcode, uint16_t sa);
/* The same in the command table of lun's device type. */
const struct scsi_op *scsi_lun_op_find(const struct scsi_lun *lun, uint8_t opcode, uint16_t sa);
/* The MMC (cdrom) command table (mmc_table.c). */
extern const struct scsi_op mmc_ops[];
extern const unsigned mmc_n_ops;
bool scsi_opcode_has_sa(uint8_t opcode);
/* The service action of a CDB whose opcode has them, else SCSI_NO_SA. */
uint16_t scsi_cdb_sa(const uint8_t *cdb);
/* The table entry of a CDB (its opcode, and its service action when the
 * opcode has them and the CDB holds it), or NULL. */
const struct scsi_op *scsi_cdb_op(const uint8_t *cdb, uint32_t cdb_len);
/* SCSI_DIR_BY_CDB becomes the direction of op (NONE without op). */
void scsi_cmd_resolve_dir(struct scsi_cmd *cmd, const struct scsi_op *op);
/* Whether this LUN serves op: its policy and its settings (UNMAP needs
 * discard). Refused commands are absent from RSOC. */
bool scsi_lun_serves(const struct scsi_lun *lun, const struct scsi_op *op);
bool scsi_policy_allows(const struct scsi_lun_config *cfg, uint8_t opcode, uint16_t sa);

/* --- answering (sense.c) --- */

struct scsi_sense {
    uint8_t key;
    uint16_t asc;                   /* ASC << 8 | ASCQ */
    bool info_valid;
    uint64_t info;
    bool sks_valid;
    uint8_t sks[3];                 /* sense-key-specific bytes, SKSV included */
};

/* Encode s into buf (SCSI_SENSE_MAX bytes); returns the length. */
uint32_t scsi_sense_encode(const struct scsi_sense *s, bool desc, uint8_t *buf);
/* The LUN's current sense format (control page D_SENSE). */
bool scsi_lun_desc_sense(struct scsi_lun *lun);

/* The answer helpers below fill status, sense and residual and never
 * touch cmd->access (they also run inside execute, while the dispatcher
 * may read it). */
/* Status GOOD with the residual of a command that wanted `wanted` bytes
 * in direction dir and moved `moved` (a buffer in the other direction
 * counts as none). scsi_good: no direction (commands without data). */
void scsi_good_xfer(struct scsi_cmd *cmd, enum scsi_dir dir, uint64_t wanted, uint64_t moved);
void scsi_good(struct scsi_cmd *cmd, uint64_t wanted, uint64_t moved);
/* CHECK CONDITION with s (the command moved no data). */
void scsi_fail(struct scsi_lun *lun, struct scsi_cmd *cmd, const struct scsi_sense *s);
void scsi_fail_key(struct scsi_lun *lun, struct scsi_cmd *cmd, uint8_t key, uint16_t asc);
/* ILLEGAL REQUEST, INVALID FIELD IN CDB / PARAMETER LIST with a field
 * pointer to byte (and bit, or -1 when the field is whole bytes). */
void scsi_fail_cdb(struct scsi_lun *lun, struct scsi_cmd *cmd, unsigned byte, int bit);
void scsi_fail_param(struct scsi_lun *lun, struct scsi_cmd *cmd, unsigned byte, int bit);
/* A block-layer error (negative errno) on a read or a write at lba; why
 * is the reason the block call recorded (logged, a few per LUN per
 * second, when the failure is the medium's or the target's). */
void scsi_fail_errno(struct scsi_lun *lun, struct scsi_cmd *cmd, int err, bool write,
                     uint64_t lba, const struct scuse_err *why);
/* Map a negative errno to sense (or to a status without sense: BUSY). */
uint8_t scsi_errno_sense(int err, bool write, struct scsi_sense *s);

/* Bytes of cmd->data usable in direction dir: data.len when the transport
 * gave the buffer that direction, 0 otherwise (never write into a
 * data-out buffer or read a data-in one). */
size_t scsi_data_len(const struct scsi_cmd *cmd, enum scsi_dir dir);
/* Answer a data-in command from buf: avail bytes exist, the CDB allots
 * alloc; copies min(avail, alloc, buffer) and sets GOOD + residual. */
void scsi_reply(struct scsi_cmd *cmd, const void *buf, size_t avail, size_t alloc);

/* The data-out buffer is shorter than a command that cannot run in part
 * (WRITE SAME, COMPARE AND WRITE, VERIFY with BYTCHK 11b) needs: nothing
 * is done; ILLEGAL REQUEST, PARAMETER LIST LENGTH ERROR, overflow set. */
void scsi_fail_short_data(struct scsi_lun *lun, struct scsi_cmd *cmd, uint64_t wanted);

/* Range check [lba, lba+n) against the capacity; fails the command with
 * LBA OUT OF RANGE and returns false when it does not fit. */
bool scsi_check_range(struct scsi_lun *lun, struct scsi_cmd *cmd, uint64_t lba, uint64_t n);
/* Unit attention: the next one to report (highest priority), removed. */
bool scsi_lun_take_ua(struct scsi_lun *lun, struct scsi_sense *s);
bool scsi_lun_write_cache(struct scsi_lun *lun);
/* Writes are refused: a read-only LUN, or SWP set in the control page. */
static inline bool scsi_lun_wp(struct scsi_lun *lun)
{
    return lun->read_only || __atomic_load_n(&lun->swp, __ATOMIC_RELAXED);
}
/* DATA PROTECT: WRITE PROTECTED, or SOFTWARE WRITE PROTECTED under SWP. */
void scsi_fail_wp(struct scsi_lun *lun, struct scsi_cmd *cmd);

/* --- removable medium (medium.c) --- */
/* Count a command in as a reader of the medium: true when the medium may
 * be read (then scsi_medium_put once done with it), false with the
 * NOT READY sense for the drive's state in *s (nothing to put). */
bool scsi_medium_get(struct scsi_lun *lun, struct scsi_sense *s);
void scsi_medium_put(struct scsi_lun *lun);
/* Whether cmd holds the medium (a prepared command that reads it). */
bool scsi_cmd_holds_medium(const struct scsi_lun *lun, const struct scsi_cmd *cmd);
/* A prepared command ends without executing (aborted, refused by the
 * dispatcher): let go of what prepare took. */
void scsi_cmd_drop(struct scsi_lun *lun, struct scsi_cmd *cmd);
/* Call the event callback (not under lun->lock). */
void scsi_lun_event(struct scsi_lun *lun, int event);

/* LBA and block count of a CDB in the READ/WRITE layouts (6, 10, 12, 16
 * bytes); len_byte: where the length field starts (for field pointers). */
struct sbc_range {
    uint64_t lba, n;
    unsigned len_byte;
};
void sbc_decode(const uint8_t *cdb, struct sbc_range *r);
/* Block-layer write flags: FUA when asked or when the write cache is off. */
unsigned sbc_write_flags(struct scsi_lun *lun, bool fua);

/* --- per command (spc_*.c, sbc_*.c) --- */
#define SCSI_HANDLER(name)                                                   \
    void name(struct scsi_lun *lun, struct scsi_cmd *cmd)

SCSI_HANDLER(spc_prep_tur);
SCSI_HANDLER(spc_prep_request_sense);
SCSI_HANDLER(spc_prep_inquiry);
SCSI_HANDLER(spc_prep_report_luns);
SCSI_HANDLER(spc_prep_mode_sense);
SCSI_HANDLER(spc_prep_mode_select);
SCSI_HANDLER(spc_exec_mode_select);
SCSI_HANDLER(spc_prep_rsoc);
SCSI_HANDLER(spc_prep_rtmf);
SCSI_HANDLER(sbc_prep_start_stop);
SCSI_HANDLER(sbc_exec_start_stop);
SCSI_HANDLER(sbc_prep_prevent_allow);
SCSI_HANDLER(sbc_prep_read_capacity10);
SCSI_HANDLER(sbc_prep_read_capacity16);
SCSI_HANDLER(sbc_prep_get_lba_status);
SCSI_HANDLER(sbc_exec_get_lba_status);
SCSI_HANDLER(sbc_prep_rw);
SCSI_HANDLER(sbc_exec_read);
SCSI_HANDLER(sbc_exec_write);
SCSI_HANDLER(sbc_prep_verify);
SCSI_HANDLER(sbc_exec_verify);
SCSI_HANDLER(sbc_prep_write_verify);
SCSI_HANDLER(sbc_exec_write_verify);
SCSI_HANDLER(sbc_prep_caw);
SCSI_HANDLER(sbc_exec_caw);
SCSI_HANDLER(sbc_prep_sync_cache);
SCSI_HANDLER(sbc_exec_sync_cache);
SCSI_HANDLER(sbc_prep_prefetch);
SCSI_HANDLER(sbc_exec_prefetch);
SCSI_HANDLER(sbc_prep_write_same);
SCSI_HANDLER(sbc_exec_write_same);
SCSI_HANDLER(sbc_prep_unmap);
SCSI_HANDLER(sbc_exec_unmap);
/* sbc_orwrite.c */
SCSI_HANDLER(sbc_prep_orwrite);
SCSI_HANDLER(sbc_exec_orwrite);
/* sbc_rw.c: a transfer's checks (n <= max, else INVALID FIELD at
 * len_byte; the range; write protection when write; 0 blocks answered
 * GOOD), then cmd's range and access set. False when answered. */
bool sbc_prep_range(struct scsi_lun *lun, struct scsi_cmd *cmd, uint64_t lba, uint64_t n,
                    uint64_t max, unsigned len_byte, bool write, enum scsi_access access);
SCSI_HANDLER(sbc_prep_write_atomic);
SCSI_HANDLER(sbc_exec_write_atomic);
uint32_t sbc_max_atomic_blocks(const struct scsi_lun *lun);
/* sbc_xcopy.c */
SCSI_HANDLER(sbc_prep_xcopy);
SCSI_HANDLER(sbc_exec_xcopy);
SCSI_HANDLER(sbc_prep_receive_copy_results);
/* sbc_defect.c */
SCSI_HANDLER(sbc_prep_read_defect_data);
/* sbc_sanitize.c */
SCSI_HANDLER(sbc_prep_sanitize);
SCSI_HANDLER(sbc_exec_sanitize);
/* Wait for a running SANITIZE to end (LUN teardown, the next SANITIZE). */
void sbc_sanitize_wait(struct scsi_lun *lun);
/* An abort or a reset names the running command with this tag (NULL: any
 * of the LUN): if it is a SANITIZE waiting for its sanitize, the command
 * ends now (TASK ABORTED) and the sanitize goes on, as SBC-4 4.11 has it
 * (an abort or a reset does not end a sanitize operation). True if so. */
bool sbc_sanitize_detach(struct scsi_lun *lun, const uint64_t *tag);

/* REPORT LUNS parameter data for a LUN of t (self alone when t is NULL;
 * none when well_known_only), min(alloc, available) bytes into cmd (target.c). */
void scsi_target_reply_luns(const struct scsi_target *t, uint16_t self, bool well_known_only,
                            struct scsi_cmd *cmd, size_t alloc);

/* Mode pages (spc_mode_pages.c): page bytes for pc into out. */
size_t scsi_mode_page(struct scsi_lun *lun, uint8_t page, int pc, uint8_t *out);

#endif
