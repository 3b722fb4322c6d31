/* The TCMU command ring, userspace's side (tcmu.md §1-3).
 *
 * The kernel writes entries into the ring and moves cmd_head; scuse reads
 * them in ring order, copies each command out (CDB, iovecs turned into
 * pointers into the data area) after checking every offset and length
 * against the mapping, and later writes the completion and moves
 * cmd_tail. The kernel reclaims ring space in ring order and, for each
 * command slot the tail passes, takes the cmd_id written in the slot:
 *
 *  - with CAP_OOOC a completion goes into the oldest slot not yet handed
 *    back, whatever command that slot first held (its command was copied
 *    out when it was parsed), so commands complete as soon as they finish;
 *  - without it each completion goes into its own slot, and the tail
 *    moves over the completed prefix only.
 *
 * Either way the slots between the tail and the parse position are kept
 * in a FIFO (offset, length, completed), so the tail never depends on
 * rereading what the kernel wrote. PAD and TMR entries need no answer:
 * the tail passes them with the slots around them.
 *
 * An entry whose length cannot be followed, or a head outside the ring,
 * breaks the ring: nothing more is parsed (completions of commands
 * already parsed are still written). A command entry that is merely
 * unsound (iovecs outside the data area, a CDB outside its entry, ...) is
 * completed at once with CHECK CONDITION and a log line.
 *
 * Threads: tcmu_ring_next() runs on one thread (the device's event loop);
 * tcmu_ring_complete() on any thread. */
#ifndef SCUSE_TCMU_RING_H
#define SCUSE_TCMU_RING_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "scsi/scsi.h"
#include "util/err.h"

#define TCMU_REQ_INLINE_IOV 16

/* One command entry, copied out of the ring. */
struct tcmu_req {
    uint16_t cmd_id;
    uint64_t slot;                  /* sequence number of its ring slot */
    uint8_t cdb[SCSI_CDB_LEN_MAX];
    uint32_t cdb_len;               /* scsi_cdb_length(): the ring does not say */
    struct iovec *iov;              /* pointers into the data area */
    uint32_t iov_cnt;
    uint64_t data_len;              /* sum of the iovecs */
    /* storage: iov is iov_inline or a malloc'd array of iov_cap entries,
     * kept across reuse (tcmu_req_init / tcmu_req_fini) */
    uint32_t iov_cap;
    struct iovec iov_inline[TCMU_REQ_INLINE_IOV];
};

void tcmu_req_init(struct tcmu_req *req);
void tcmu_req_fini(struct tcmu_req *req);

/* A ring slot not yet handed back (see above). */
struct tcmu_slot {
    uint32_t off, len;              /* in the ring */
    bool done;                      /* in-order mode: its completion is written */
};

struct tcmu_ring {
    uint8_t *map;
    uint64_t map_size;
    uint32_t cmdr_off, cmdr_size;   /* the ring: [cmdr_off, cmdr_off + cmdr_size) */
    uint64_t data_off;              /* the data area: [data_off, map_size) */
    uint16_t flags;                 /* TCMU_MAILBOX_FLAG_CAP_* */
    uint32_t *head_p, *tail_p;      /* in the mailbox */
    char name[96];                  /* for log lines */
    void (*kick)(void *arg);        /* tell the kernel the tail moved */
    void *kick_arg;

    /* The parser's own (one thread): */
    bool broken;
    uint16_t *tmr_ids;              /* the last TMR's command ids */
    uint64_t n_failed;              /* unsound command entries answered (atomic) */
    uint64_t n_pads;                /* PAD entries passed (the ring wrapped) */

    pthread_mutex_t lock;           /* guards what follows (the parser also reads next) */
    uint32_t next;                  /* offset of the next entry to parse */
    uint32_t tail;                  /* as last published */
    struct tcmu_slot *fifo;
    uint64_t fifo_cap, fifo_first, fifo_end; /* sequence numbers [first, end) */
};

/* Take over a mapping laid out as the kernel lays it out: check the
 * mailbox (version 2, ring inside the mapping) and start parsing at the
 * mailbox's cmd_tail. kick is called after every move of the tail. */
int tcmu_ring_init(struct tcmu_ring *r, void *map, uint64_t size, const char *name,
                   void (*kick)(void *), void *kick_arg, struct scuse_err *err);
void tcmu_ring_fini(struct tcmu_ring *r);

enum tcmu_next {
    TCMU_NEXT_EMPTY,                /* nothing new */
    TCMU_NEXT_CMD,                  /* req holds a command: answer with tcmu_ring_complete */
    TCMU_NEXT_FAILED,               /* an unsound command entry, already answered */
    TCMU_NEXT_TMR,                  /* tmr holds a task management notification */
    TCMU_NEXT_BROKEN,               /* the ring cannot be followed (logged once) */
};

struct tcmu_tmr {
    uint8_t type;                   /* TCMU_TMR_* */
    uint32_t cnt;
    const uint16_t *ids;            /* valid until the next tcmu_ring_next */
};

enum tcmu_next tcmu_ring_next(struct tcmu_ring *r, struct tcmu_req *req, struct tcmu_tmr *tmr);

/* Complete req: status, sense (at most 96 bytes are kept), and whether
 * it was a data-in command (the entry does not say; the SCSI layer knows
 * once it decoded the CDB) with the bytes it filled: a short reply sets
 * READ_LEN when the kernel offers it, else the rest of the buffer is
 * zeroed. Never READ_LEN for other commands: the kernel would report the
 * residual of a write. */
void tcmu_ring_complete(struct tcmu_ring *r, const struct tcmu_req *req, uint8_t status,
                        const uint8_t *sense, uint32_t sense_len, bool data_in,
                        uint64_t filled);

bool tcmu_ring_ooo(const struct tcmu_ring *r);

/* The mailbox capabilities scuse uses when the kernel offers them. */
#define TCMU_RING_FLAGS_USED (TCMU_MAILBOX_FLAG_CAP_OOOC | TCMU_MAILBOX_FLAG_CAP_READ_LEN | \
                              TCMU_MAILBOX_FLAG_CAP_TMR)
/* " OOOC READ_LEN ..." for flags (" none" for 0), for log lines. */
void tcmu_ring_flag_names(uint16_t flags, char *out, size_t len);

#endif
