/* The dispatcher's insides: per-LUN queues with SCSI's ordering rules
 * (dispatch_queue.c, no locking, no threads) and the worker pool that
 * runs them (dispatch.c). Transports use scsi.h; this header is for the
 * dispatcher's files, its tests and tools that attach LUNs up front.
 *
 * Why a worker pool and not io_uring: the block layer and the format
 * drivers are synchronous (a qcow2 read may walk L2 tables, decompress a
 * cluster or read the backing chain inside one call), so a command needs
 * a thread for as long as it runs. io_uring could only serve the file
 * reads and writes underneath once the block layer can suspend a request
 * and resume it on a completion; until then a pool of threads calling
 * scsi_cmd_execute() is the engine, and this file is the one interface
 * an asynchronous engine would sit behind.
 *
 * Measured (fio 3.33, 4 KiB random reads of a 512 MiB file, 2 CPUs):
 * from the page cache, which is where scuse's images are read (buffered,
 * cache=writeback), io_uring QD32 gave 0.61M IOPS in one thread and 1.35M
 * in two, psync 1.47M in two threads and 1.45M in three: io_uring
 * completes cached reads inline and buys nothing. With O_DIRECT on the
 * virtual disk, io_uring QD32 in one thread (100k IOPS) matched 32 psync
 * threads (94k) and beat 3 (26k): an engine for O_DIRECT images would
 * want io_uring (or many more workers), which this interface allows. */
#ifndef SCUSE_SCSI_DISPATCH_H
#define SCUSE_SCSI_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "scsi/scsi.h"

/* Workers when scsi_disp_config.workers is 0: the number of online CPUs
 * plus this many, at least DISP_MIN_WORKERS and at most DISP_MAX_WORKERS
 * (see dispatch.c for the measurement behind it). */
#define DISP_EXTRA_WORKERS 1
#define DISP_MIN_WORKERS 2
#define DISP_MAX_WORKERS 64

/* Where a command is in its LUN's queue (cmd->state; the upper bits hold
 * flags). cmd->seq counts the earlier commands it still waits for. */
enum {
    DISP_WAITING = 1,              /* an earlier conflicting command is active */
    DISP_READY = 2,                /* may start; not yet taken by a worker */
    DISP_RUNNING = 3,              /* a worker executes it */
    DISP_ABORTED = 4,              /* aborted before it started; for a worker to complete */
    DISP_ABORTING = 5,             /* a worker completes it with TASK ABORTED */
    DISP_PHASE_MASK = 0xf,
    DISP_DRAIN = 1 << 4,           /* a LUN reset waits for this command */
};

/* What a LUN has done (the control socket's query-luns): commands that
 * ran and completed, by kind, and the blocks they covered. */
struct scsi_lun_stats {
    uint64_t commands;             /* every command completed, errors included */
    uint64_t reads, read_blocks;   /* READ access (READ, VERIFY...), GOOD status */
    uint64_t writes, write_blocks; /* WRITE or ATOMIC access, GOOD status */
    uint64_t flushes;              /* SYNCHRONIZE CACHE, GOOD status */
    uint64_t errors;               /* completed with another status than GOOD */
};

/* One LUN's commands: every command submitted and not yet finished, in
 * one list through cmd->next. HEAD OF QUEUE commands go to the front,
 * the others to the back in submission order. A command starts when no
 * command that is ahead of it in the list (or running) conflicts with it:
 *  - overlapping ranges where at least one side writes (WRITE, ATOMIC);
 *  - anything at all against an ORDERED task or a BARRIER command.
 * Instead of rescanning, each command counts what it waits for (cmd->seq)
 * and a command that finishes or is aborted decrements the counts of the
 * commands that counted it. */
struct scsi_disp_lun {
    struct scsi_lun *lun;
    struct scsi_disp *disp;
    struct scsi_cmd *head, *tail;
    unsigned n_active;             /* commands in the list */
    unsigned n_waiting;            /* DISP_WAITING */
    unsigned n_runnable;           /* DISP_READY or DISP_ABORTED */
    unsigned n_excl;               /* active, not aborted, that can conflict with a read */
    unsigned n_drain;              /* commands with DISP_DRAIN whose done() has not returned */
    unsigned n_inflight;           /* submitted, done() not yet returned */
    struct scsi_lun_stats stats;   /* commands run to completion (under the lock) */
    bool on_ready;                 /* linked in the dispatcher's list of LUNs with work */
    struct scsi_disp_lun *ready_next;
    struct scsi_disp_lun *all_next; /* every LUN of the dispatcher */
};

/* ---- dispatch_queue.c: the ordering rules, on one LUN, caller locks ---- */

/* Do a and b have to run one after the other? */
bool disp_conflict(const struct scsi_cmd *a, const struct scsi_cmd *b);
/* Enqueue a prepared command (HEAD OF QUEUE at the front). Returns true
 * if it may start now (DISP_READY), false if it waits. */
bool disp_queue_add(struct scsi_disp_lun *q, struct scsi_cmd *cmd);
/* The first command a worker may take (READY: now RUNNING; or ABORTED:
 * now ABORTING, to be completed as such), or NULL. */
struct scsi_cmd *disp_queue_take(struct scsi_disp_lun *q);
/* Remove a command a worker took, and release what waited for it.
 * Returns how many commands became ready. */
unsigned disp_queue_finish(struct scsi_disp_lun *q, struct scsi_cmd *cmd);
/* Abort a command that has not started: it conflicts with nothing from
 * now on and becomes DISP_ABORTED. Returns how many commands became
 * ready (the aborted one included). */
unsigned disp_queue_abort(struct scsi_disp_lun *q, struct scsi_cmd *cmd);
/* The first command with this tag that has not started, or NULL. */
struct scsi_cmd *disp_queue_find_unstarted(struct scsi_disp_lun *q, uint64_t tag);

static inline int disp_phase(const struct scsi_cmd *c) { return c->state & DISP_PHASE_MASK; }

/* ---- dispatch.c: extras for the owner of LUNs and dispatcher ---- */

/* Attach lun to d before its first command (scsi_submit attaches on
 * first use too, but cannot report the failure other than with BUSY).
 * A LUN belongs to at most one dispatcher at a time. */
int scsi_disp_attach(struct scsi_disp *d, struct scsi_lun *lun, struct scuse_err *err);
/* Wait for lun's commands and forget it: required before
 * scsi_lun_destroy() while d lives on (scsi_disp_destroy detaches the
 * LUNs still attached, which must still exist then). */
void scsi_disp_detach(struct scsi_disp *d, struct scsi_lun *lun);
/* lun's counters in d (zeros when it is not attached). */
void scsi_disp_lun_stats(struct scsi_disp *d, struct scsi_lun *lun, struct scsi_lun_stats *out);
/* Number of worker threads d runs. */
unsigned scsi_disp_workers(const struct scsi_disp *d);

#endif
