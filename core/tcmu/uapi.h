/* The TCMU wire format, from the kernel's <linux/target_core_user.h>.
 *
 * That header pulls in <linux/uio.h>, whose struct iovec collides with
 * glibc's; the two have the same layout, so glibc's is used and the
 * kernel's is kept out by its include guard. */
#ifndef SCUSE_TCMU_UAPI_H
#define SCUSE_TCMU_UAPI_H

#include <stddef.h>
#include <sys/uio.h>

#ifndef __LINUX_UIO_H
#define __LINUX_UIO_H
#endif
#include <linux/target_core_user.h>

/* The offsets the ring code relies on (tcmu.md §1-2). */
_Static_assert(offsetof(struct tcmu_mailbox, cmd_head) == 12, "mailbox cmd_head");
_Static_assert(offsetof(struct tcmu_mailbox, cmd_tail) == 64, "mailbox cmd_tail");
_Static_assert(sizeof(struct tcmu_cmd_entry_hdr) == 8, "entry header");
_Static_assert(offsetof(struct tcmu_cmd_entry, req.cdb_off) == 24, "req.cdb_off");
_Static_assert(offsetof(struct tcmu_cmd_entry, req.iov) == 48, "req.iov");
_Static_assert(offsetof(struct tcmu_cmd_entry, rsp.read_len) == 12, "rsp.read_len");
_Static_assert(offsetof(struct tcmu_cmd_entry, rsp.sense_buffer) == 16, "rsp.sense_buffer");
_Static_assert(sizeof(struct tcmu_cmd_entry) == 112, "entry size");
_Static_assert(offsetof(struct tcmu_tmr_entry, cmd_ids) == 32, "tmr cmd_ids");
_Static_assert(sizeof(struct iovec) == 16, "iovec as the kernel lays it out");

/* The generic netlink family (drivers/target/target_core_user.c). */
#define TCMU_GENL_FAMILY "TCM-USER"
#define TCMU_GENL_GROUP "config"
#define TCMU_GENL_VERSION 2

#endif
