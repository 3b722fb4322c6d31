/* The SCSI target core as transports see it: a LUN over an open image
 * chain, commands submitted with the transport's own memory, completed
 * through a callback (possibly on another thread, possibly out of order).
 *
 * Split of the work:
 *   - emulation (core/scsi/spc_*.c, sbc_*.c, sense.c, lun.c): decodes and
 *     validates a CDB (scsi_cmd_prepare) and executes it synchronously
 *     (scsi_cmd_execute), filling status, sense and residual;
 *   - dispatcher (core/scsi/dispatch.c): runs prepared commands on worker
 *     threads, many in flight, orders overlapping ones, aborts and resets.
 * Transports only use this header. */
#ifndef SCUSE_SCSI_H
#define SCUSE_SCSI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blk/blk.h"
#include "util/err.h"
#include "util/iov.h"

/* SAM status codes */
#define SCSI_STATUS_GOOD 0x00
#define SCSI_STATUS_CHECK_CONDITION 0x02
#define SCSI_STATUS_CONDITION_MET 0x04
#define SCSI_STATUS_BUSY 0x08
#define SCSI_STATUS_RESERVATION_CONFLICT 0x18
#define SCSI_STATUS_TASK_SET_FULL 0x28
#define SCSI_STATUS_TASK_ABORTED 0x40

#define SCSI_SENSE_MAX 252          /* fixed or descriptor sense, at most */
#define SCSI_CDB_LEN_MAX 263        /* a variable-length CDB: 8 + 255 bytes */

enum scsi_dir {
    SCSI_DIR_NONE,
    SCSI_DIR_FROM_DEV,              /* data-in: the target fills cmd->data */
    SCSI_DIR_TO_DEV,                /* data-out: the target reads cmd->data */
    SCSI_DIR_BY_CDB,                /* the transport cannot tell (a TCMU ring entry has
                                       the buffer, not its direction): scsi_cmd_prepare
                                       sets the command's own, NONE for a command it does
                                       not know; cmd->dir says it from then on */
};

/* The length of the CDB starting with these bytes, from its opcode's
 * group (SPC) as the initiator's side computes it; avail: how many of
 * its bytes can be read (at least 1). A variable-length CDB (7Fh) needs
 * byte 7: 0 when fewer than 8 bytes are available. */
unsigned scsi_cdb_length(const uint8_t *cdb, unsigned avail);

/* Answers a transport gives by itself, to a command it cannot hand to a
 * LUN (a TCMU ring entry that is unsound, a device without medium): the
 * status is CHECK CONDITION with this sense. */
enum scsi_answer {
    SCSI_ANSWER_INVALID_OPCODE,     /* ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE */
    SCSI_ANSWER_TARGET_FAILURE,     /* HARDWARE ERROR, INTERNAL TARGET FAILURE */
    SCSI_ANSWER_NO_MEDIUM,          /* NOT READY, MEDIUM NOT PRESENT */
};
/* Fixed-format sense data for a (buf: SCSI_SENSE_MAX bytes); returns its
 * length (18). */
uint32_t scsi_sense_answer(enum scsi_answer a, uint8_t *buf);

/* Task attributes (SAM) */
enum scsi_task_attr {
    SCSI_TASK_SIMPLE,
    SCSI_TASK_ORDERED,
    SCSI_TASK_HEAD_OF_QUEUE,
    SCSI_TASK_ACA,
};

/* What the dispatcher needs to know to run a prepared command. */
enum scsi_access {
    SCSI_ACCESS_DONE,               /* answered by prepare (error or inline reply) */
    SCSI_ACCESS_NONE,               /* runs, touches no block range (INQUIRY, ...) */
    SCSI_ACCESS_READ,               /* reads [lba, lba + nblocks) */
    SCSI_ACCESS_WRITE,              /* changes [lba, lba + nblocks) */
    SCSI_ACCESS_ATOMIC,             /* COMPARE AND WRITE: reads and writes, atomically */
    SCSI_ACCESS_FLUSH,              /* SYNCHRONIZE CACHE: after every completed write */
    SCSI_ACCESS_BARRIER,            /* changes LUN state: runs alone (MODE SELECT, UNMAP
                                       with many descriptors may use WRITE per range instead) */
};

struct scsi_lun;

/* One command. The transport owns the memory and fills the "in" part;
 * the SCSI layer fills the "out" part before calling done(). */
struct scsi_cmd {
    /* in */
    const uint8_t *cdb;
    uint32_t cdb_len;
    struct iov_view data;           /* the data buffer (its len: the transfer length the
                                       initiator allotted) */
    enum scsi_dir dir;
    uint8_t *sense;                 /* SCSI_SENSE_MAX bytes, owned by the transport */
    uint64_t tag;
    enum scsi_task_attr attr;
    void (*done)(struct scsi_cmd *cmd);
    void *priv;                     /* the transport's */

    /* out */
    uint8_t status;
    uint32_t sense_len;
    uint32_t xfer;                  /* bytes actually moved */
    uint32_t resid;                 /* data.len - bytes the command wanted, when positive */
    bool overflow;                  /* the command wanted more than data.len (resid then
                                       counts what did not fit) */
    /* Residuals: data-in commands with an allocation length (INQUIRY,
     * MODE SENSE, ...) send min(allocation length, data available); READ
     * sends what fits of the CDB's transfer length; WRITE, WRITE AND
     * VERIFY and VERIFY (BYTCHK 1) use the whole blocks that fit (a torn
     * block is never written). A buffer given in the other direction
     * (cmd->dir) counts as no buffer: never written into, never read.
     * Commands that cannot run in part (WRITE SAME, COMPARE AND WRITE,
     * parameter lists) fail with PARAMETER LIST LENGTH ERROR instead. */

    /* private: set by scsi_cmd_prepare, used by the dispatcher */
    enum scsi_access access;
    uint64_t lba, nblocks;
    const void *op;                 /* the command table entry */
    struct scsi_cmd *next;          /* dispatcher queues */
    uint64_t seq;
    int state;
};

/* What a LUN is to the initiator (its peripheral device type). */
enum scsi_device_type {
    SCSI_DEVICE_DISK,               /* 00h, SBC: the default */
    SCSI_DEVICE_CDROM,              /* 05h, MMC: 2048-byte blocks, read-only, removable
                                       medium (core/scsi/mmc_*.c) */
};

/* Per-LUN settings (what `scuse serve` and the domain XML configure). */
struct scsi_lun_config {
    enum scsi_device_type device;
    uint32_t block_size;            /* 512 or 4096 */
    uint8_t phys_exp;               /* physical block = block_size << phys_exp */
    char vendor[9];                 /* T10 vendor, space padded on the wire */
    char product[17];
    char revision[5];
    char serial[64];                /* "" = derived from the image */
    uint64_t wwn;                   /* VPD 83 NAA designator: 0 = derived from the image
                                       (NAA 6, 16 bytes); NAA 6 in the top nibble = its
                                       high 64 bits (the low half derived); anything
                                       else (NAA 5, libvirt's <wwn>) = an 8-byte
                                       designator as is */
    uint16_t rotation_rate;         /* VPD B1: 1 = non-rotating, 0 = not reported */
    bool read_only;
    bool write_cache;               /* WCE in the caching page */
    /* Metadata write-through: a command that changed the image (WRITE,
     * WRITE SAME, UNMAP, COMPARE AND WRITE, WRITE AND VERIFY) completes
     * only once the image metadata it left in the process (qcow2 L2
     * entries, refcounts) is written to the file, in the format's
     * crash-safe order; the data itself may stay in the write cache.
     * For transports whose initiator outlives the process: the kernel
     * keeps a TCMU device when its daemon is killed, and the guest's
     * later SYNCHRONIZE CACHE is answered by a new daemon that never
     * saw that metadata. */
    bool meta_write_through;
    bool discard;                   /* UNMAP / WRITE SAME with UNMAP served */
    /* Command policy: when policy_allow, only listed opcodes are served;
     * otherwise listed opcodes are refused. Entries are opcode << 16 |
     * service action (0xffff: every service action of the opcode). */
    bool policy_allow;
    uint32_t policy[64];
    unsigned n_policy;
};

/* Fill cfg with defaults (512-byte blocks, "SCUSE" / "scuse disk" /
 * version, write cache on, discard on, no policy). */
void scsi_lun_config_default(struct scsi_lun_config *cfg);

/* Set cfg's command policy from "allow=LIST" or "deny=LIST" (the word
 * may also be followed by white space instead of '='). LIST: commands by
 * name (the table's, ignoring case and all but letters and digits:
 * WRITE_SAME_16) or by hex opcode (0x optional), opcode/service action
 * (9e/12) for opcodes that have them; separated by ',', ':' or white
 * space; '#' comments to the end of a line. Unknown commands, empty
 * entries and more than 64 entries are errors (err names the token);
 * cfg is untouched on error. */
int scsi_policy_parse(const char *spec, struct scsi_lun_config *cfg, struct scuse_err *err);
/* The same from a file (at most 64 KiB); errors name the file and line. */
int scsi_policy_load(const char *path, struct scsi_lun_config *cfg, struct scuse_err *err);
/* Whether cfg has a policy (an allow list, or a non-empty deny list). */
bool scsi_policy_set(const struct scsi_lun_config *cfg);
/* The longest text scsi_policy_format gives for a parsed policy (every
 * command of the table listed; the unit test holds the table to it). */
#define SCSI_POLICY_TEXT_MAX 320
/* cfg's policy as scsi_policy_parse reads it back, entries in hex joined
 * by sep ("deny=42:93/12"; "" without a policy), into out as snprintf
 * does; returns the full length. */
int scsi_policy_format(const struct scsi_lun_config *cfg, char sep, char *out, size_t len);

/* A LUN over bs (not owned: the caller closes it after the LUN). No unit
 * attention is pending at creation; a transport that attaches the LUN to
 * a running initiator raises SCSI_UA_POWER_ON itself. A cdrom LUN may be
 * created without a medium (bs NULL: an empty drive, tray closed); its
 * block_size is 2048 whatever cfg says, and it is read-only. */
int scsi_lun_create(const struct scsi_lun_config *cfg, struct blk_node *bs, uint16_t lun_id,
                    struct scsi_lun **out, struct scuse_err *err);
void scsi_lun_destroy(struct scsi_lun *lun);
uint64_t scsi_lun_blocks(const struct scsi_lun *lun);
uint32_t scsi_lun_block_size(const struct scsi_lun *lun);

/* The dispatcher's per-LUN state hangs here (NULL until it sets it). */
struct scsi_disp_lun;
struct scsi_disp_lun **scsi_lun_disp_slot(struct scsi_lun *lun);

/* Raise a unit attention (reset, capacity changed, ...) for every nexus.
 * SCSI_UA_POWER_ON also returns the LUN to its power-on state (mode pages
 * to their defaults, unit started). */
enum scsi_ua {
    SCSI_UA_POWER_ON,               /* 29h/00h */
    SCSI_UA_CAPACITY_CHANGED,       /* 2Ah/09h */
    SCSI_UA_MODE_CHANGED,           /* 2Ah/01h */
    SCSI_UA_LUNS_CHANGED,           /* 3Fh/0Eh */
    SCSI_UA_NEXUS_LOSS,             /* 29h/07h: I_T NEXUS RESET */
    SCSI_UA_MEDIUM_CHANGED,         /* 28h/00h: NOT READY TO READY CHANGE, MEDIUM MAY
                                       HAVE CHANGED (a medium was inserted) */
    SCSI_UA_NO_MEDIUM,              /* 3Ah/00h: the host took the medium out */
};
void scsi_lun_raise_ua(struct scsi_lun *lun, enum scsi_ua ua);
/* A physical block size a LUN can report: a power of two, 512 to 1 MiB. */
bool scsi_phys_size_ok(uint64_t phys_size);
/* scsi_lun_config.phys_exp for phys_size (0: none given, exponent 0): a
 * valid size, at least block_size. -EINVAL with why in err. */
int scsi_phys_exp(uint32_t block_size, uint64_t phys_size, uint8_t *exp, struct scuse_err *err);
/* What a reset does to the unit besides its unit attention (mode pages
 * back to their defaults, started, removal allowed): for a transport whose
 * kernel reports the reset's unit attention itself (TCMU under LIO).
 * SCSI_UA_POWER_ON does this too. */
void scsi_lun_reset_state(struct scsi_lun *lun);

/* The image under the LUN changed size (blk_refresh_size): take the new
 * capacity in whole blocks and, when it moved, raise CAPACITY DATA HAS
 * CHANGED. Returns true when the capacity changed. */
bool scsi_lun_refresh_capacity(struct scsi_lun *lun);
uint16_t scsi_lun_id(const struct scsi_lun *lun);
enum scsi_device_type scsi_lun_device(const struct scsi_lun *lun);

/* Removable medium (cdrom LUNs; a disk's medium is always present and
 * these calls refuse it with -ENOTSUP).
 *
 * The medium is a block node the caller owns: the LUN reads it while it
 * is in, the caller closes it after taking it out. Its 2048-byte blocks
 * are the disc's user data (an ISO through the raw driver, or a CUE/BIN
 * through the cue driver, whose node also carries the track list).
 *
 * Draining: every command that reads the medium holds it from its
 * prepare to the end of its execute (or its abort), counted per LUN.
 * scsi_lun_medium_eject closes the door to new commands first (they get
 * NOT READY, MEDIUM NOT PRESENT), then waits for that count to fall to
 * zero, so the node it hands back is no longer read by anybody and may be
 * closed at once. The wait needs the dispatcher's workers to run, so it
 * must not be called from a done() callback or a worker; a transport's
 * or control thread is fine. Eject and insert on one LUN are serialised
 * (a second caller during a change gets -EBUSY). */
enum scsi_medium_state {
    SCSI_MEDIUM_PRESENT,            /* in, tray closed: readable */
    SCSI_MEDIUM_ABSENT,             /* no medium, tray closed */
    SCSI_MEDIUM_TRAY_OPEN,          /* tray open (a medium may lie in it: the guest ejected) */
};
enum scsi_medium_state scsi_lun_medium_state(const struct scsi_lun *lun);
/* Whether the initiator prevents medium removal (PREVENT ALLOW MEDIUM REMOVAL). */
bool scsi_lun_medium_locked(const struct scsi_lun *lun);
/* The node in the drive (in the open tray too), or NULL. For display only:
 * it stays valid until the caller's own eject. */
struct blk_node *scsi_lun_medium(const struct scsi_lun *lun);
/* Take the medium out and leave the tray open. *old gets the node (NULL if
 * the drive was empty; the caller closes it). While the initiator
 * prevents removal: -EBUSY with a message unless force (which also lifts
 * the prevention); the refusal queues an eject request media event for
 * the guest, as a drive's eject button does. Raises UNIT ATTENTION,
 * MEDIUM NOT PRESENT and the media-removal event; calls the event
 * callback with SCSI_LUN_EVENT_MEDIUM_EJECTED. */
int scsi_lun_medium_eject(struct scsi_lun *lun, bool force, struct blk_node **old,
                          struct scuse_err *err);
/* Put bs in (the drive must hold none: -EEXIST, eject first) and close the
 * tray. Raises UNIT ATTENTION, NOT READY TO READY CHANGE, MEDIUM MAY HAVE
 * CHANGED and the new-media event; calls the event callback with
 * SCSI_LUN_EVENT_MEDIUM_INSERTED. bs must hold at least one 2048-byte
 * block; it is read, never written. */
int scsi_lun_medium_insert(struct scsi_lun *lun, struct blk_node *bs, struct scuse_err *err);

/* Events a LUN reports to whoever registered (the control socket). The
 * callback runs on the thread that caused the event: a dispatcher worker
 * for the guest's requests (it must not block, nor call back into the
 * LUN's medium functions), the caller's for eject and insert. */
enum scsi_lun_event {
    SCSI_LUN_EVENT_GUEST_EJECT_REQUEST, /* START STOP UNIT with LoEj, Start=0 (whether
                                           or not the tray opened) */
    SCSI_LUN_EVENT_GUEST_LOAD,      /* START STOP UNIT with LoEj, Start=1: tray closed */
    SCSI_LUN_EVENT_MEDIUM_EJECTED,  /* scsi_lun_medium_eject took the medium out */
    SCSI_LUN_EVENT_MEDIUM_INSERTED, /* scsi_lun_medium_insert put one in */
};
/* Register cb (NULL: none), at any time; a callback already running may
 * still finish with the old one. */
void scsi_lun_set_event_cb(struct scsi_lun *lun,
                           void (*cb)(void *opaque, struct scsi_lun *lun, int event),
                           void *opaque);

/* A target: the LUNs behind one target port (the transport maps its
 * target address to one). REPORT LUNS through any of its LUNs lists them
 * all; a command to a LUN it does not have is answered as SPC says for a
 * logical unit that is not there (standard INQUIRY: peripheral qualifier
 * 3, type 1Fh; REPORT LUNS: the inventory; REQUEST SENSE: GOOD with
 * LOGICAL UNIT NOT SUPPORTED as its data; anything else: CHECK CONDITION,
 * ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED). LUNs may be added and
 * removed while commands flow through scsi_target_submit (hot plug). */
struct scsi_target;
int scsi_target_create(struct scsi_target **out, struct scuse_err *err);
/* Frees the target, not its LUNs (they forget it). */
void scsi_target_destroy(struct scsi_target *t);
/* Adds lun under its own id (scsi_lun_create's lun_id); a LUN belongs to
 * at most one target. */
int scsi_target_add_lun(struct scsi_target *t, struct scsi_lun *lun, struct scuse_err *err);
/* Take the LUN with this id out of the target (NULL: none): once this
 * returns no scsi_target_submit reaches it; commands already submitted
 * may still run (scsi_disp_detach waits for them). */
struct scsi_lun *scsi_target_remove_lun(struct scsi_target *t, uint16_t id);
/* Raise ua on every LUN of t but except (REPORTED LUNS DATA HAS CHANGED
 * after a hot plug). */
void scsi_target_raise_ua(struct scsi_target *t, enum scsi_ua ua, const struct scsi_lun *except);
/* The LUN with this id, or NULL. The pointer stays valid only while
 * nobody removes it (the thread that adds and removes LUNs, or a caller
 * that knows). */
struct scsi_lun *scsi_target_lun(const struct scsi_target *t, uint16_t id);
unsigned scsi_target_count(const struct scsi_target *t);
/* The i-th LUN in id order (i < scsi_target_count). */
struct scsi_lun *scsi_target_lun_at(const struct scsi_target *t, unsigned i);
/* Hold t's LUN set as it is (a read lock: lookups and submits go on, a
 * LUN is added or removed only after the release): for a command that
 * works on other LUNs of the target (EXTENDED COPY). While held, find a
 * LUN by its NAA designator with scsi_target_find_naa_held. */
void scsi_target_hold(const struct scsi_target *t);
void scsi_target_release(const struct scsi_target *t);
struct scsi_lun *scsi_target_find_naa_held(const struct scsi_target *t, const uint8_t *naa,
                                           unsigned len);

/* Emulation: decode and validate cmd (every CDB field). Sets cmd->access
 * and the range; with SCSI_ACCESS_DONE the status, sense and residual are
 * final and the command must be completed without executing it. Cheap, no
 * I/O: callable on the transport's thread. Commands answered from LUN
 * state alone (TEST UNIT READY, INQUIRY, REQUEST SENSE, READ CAPACITY,
 * MODE SENSE, REPORT LUNS, RSOC, PREVENT ALLOW, errors) come back DONE;
 * UNMAP reads its parameter list here and announces the hull of its
 * ranges as one SCSI_ACCESS_WRITE (execute re-checks the list against
 * it); MODE SELECT and START STOP UNIT are SCSI_ACCESS_BARRIER. */
void scsi_cmd_prepare(struct scsi_lun *lun, struct scsi_cmd *cmd);
/* Emulation: execute a prepared command synchronously (block I/O from the
 * calling thread), filling status, sense and residual. Does not call
 * done(); does nothing for a DONE command; never writes cmd->access (the
 * dispatcher orders by it, reading it while the command runs). Uses up to about 30 KiB of the
 * calling thread's stack (compare and verify chunks, UNMAP list). */
void scsi_cmd_execute(struct scsi_lun *lun, struct scsi_cmd *cmd);

/* Dispatcher. */
struct scsi_disp;
struct scsi_disp_config {
    unsigned workers;               /* 0 = chosen by the dispatcher */
};
int scsi_disp_create(const struct scsi_disp_config *cfg, struct scsi_disp **out,
                     struct scuse_err *err);
/* Drains (waits for every command) and frees. */
void scsi_disp_destroy(struct scsi_disp *d);
/* Prepare, order, execute on a worker, and call cmd->done. */
void scsi_submit(struct scsi_disp *d, struct scsi_lun *lun, struct scsi_cmd *cmd);
/* Abort the command with this tag on lun if it has not started: it
 * completes with TASK ABORTED. Returns true if it was found not started. */
bool scsi_abort(struct scsi_disp *d, struct scsi_lun *lun, uint64_t tag);
/* LUN reset: abort what has not started, wait for what runs, raise the
 * reset unit attention. */
void scsi_lun_reset(struct scsi_disp *d, struct scsi_lun *lun);
/* Submit to the LUN of t with this id: scsi_submit when it exists, else
 * answered at once (done() called before this returns). */
void scsi_target_submit(struct scsi_target *t, struct scsi_disp *d, uint16_t id,
                        struct scsi_cmd *cmd);

/* Task management as SAM has it, for transports with a TMF channel. Each
 * returns once the commands it names are out of the task set: those not
 * started complete with TASK ABORTED, running ones are waited for (their
 * done() has returned). */
/* ABORT TASK: true if a command with this tag was in lun's task set. */
bool scsi_abort_task(struct scsi_disp *d, struct scsi_lun *lun, uint64_t tag);
/* ABORT TASK SET / CLEAR TASK SET (one nexus): every command of lun; no
 * unit attention. */
void scsi_abort_task_set(struct scsi_disp *d, struct scsi_lun *lun);
/* QUERY TASK: is a command with this tag in lun's task set (submitted,
 * not finished)? */
bool scsi_query_task(struct scsi_disp *d, struct scsi_lun *lun, uint64_t tag);
/* QUERY TASK SET: does lun's task set hold any command? */
bool scsi_query_task_set(struct scsi_disp *d, struct scsi_lun *lun);

#endif
