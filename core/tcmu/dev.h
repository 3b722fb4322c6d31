/* One TCMU device served: its ring (ring.h) feeding a SCSI LUN through a
 * dispatcher. Commands are parsed on the caller's thread (tcmu_dev_pump,
 * the daemon's event loop), run on the dispatcher's workers, and each
 * completion is written into the ring by the worker that finished it.
 *
 * A command that changed the image (writes, UNMAP, ...) must complete
 * only once the image metadata it changed is written to the file: the
 * kernel keeps the device across a restart of the daemon, so a daemon
 * killed after it acknowledged a write must not take the write's mapping
 * (a qcow2 L2 entry) with it while the write's data sits in the file.
 * That is the LUN's metadata write-through (scsi_lun_config's
 * meta_write_through, done by the SCSI layer on the worker before the
 * completion): the LUNs given here have it on (served.c sets it).
 *
 * Request slots (a scsi_cmd, its copied-out entry, its sense buffer) are
 * allocated in chunks as the number of commands in flight grows (up to
 * the kernel's 65535 cmd_ids), and reused: a steady workload allocates
 * nothing. */
#ifndef SCUSE_TCMU_DEV_H
#define SCUSE_TCMU_DEV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "scsi/scsi.h"
#include "tcmu/ring.h"

struct tcmu_ctx;

struct tcmu_dev {
    struct tcmu_ring ring;
    struct scsi_disp *disp;
    struct scsi_lun *lun;           /* NULL: no medium, commands get NOT READY */

    pthread_mutex_t lock;           /* guards what follows */
    pthread_cond_t idle;            /* signalled when inflight drops to 0 */
    struct tcmu_ctx *free;
    struct tcmu_ctx **chunks;
    unsigned n_chunks, max_chunks;
    unsigned inflight;
    uint64_t seq;                   /* tags: seq << 16 | cmd_id */
    uint64_t n_cmds, n_tmrs;        /* counters for logs and tests */
};

/* Serve the ring in map (size bytes, laid out by the kernel) with lun
 * (may be NULL) through disp. kick tells the kernel the tail moved. */
int tcmu_dev_init(struct tcmu_dev *d, void *map, uint64_t size, const char *name,
                  struct scsi_disp *disp, struct scsi_lun *lun, void (*kick)(void *),
                  void *kick_arg, struct scuse_err *err);
/* Wait for the commands in flight, then free. The LUN is the caller's. */
void tcmu_dev_fini(struct tcmu_dev *d);

/* Parse and submit what the kernel has put on the ring. Returns the
 * number of entries taken, or -EIO once the ring is broken, -ENOMEM when
 * no request slot could be allocated (call again later). */
int tcmu_dev_pump(struct tcmu_dev *d);

/* Wait until no command is in flight (the caller stops pumping first). */
void tcmu_dev_drain(struct tcmu_dev *d);
/* Swap the LUN (NULL: no medium); only while drained. */
void tcmu_dev_set_lun(struct tcmu_dev *d, struct scsi_lun *lun);

#endif
