/* Image locks that QEMU understands: OFD read locks on byte 100+i ("I use
 * permission i") and byte 200+i ("I do not share permission i"). A writer
 * takes 100,101,103 and 201,203; a reader 100 and 201,203, as QEMU does. */
#ifndef SCUSE_LOCK_H
#define SCUSE_LOCK_H

#include "util/err.h"

enum {
    LOCK_PERM_READ = 1u << 0,            /* consistent read */
    LOCK_PERM_WRITE = 1u << 1,
    LOCK_PERM_WRITE_UNCHANGED = 1u << 2,
    LOCK_PERM_RESIZE = 1u << 3,
};
#define LOCK_PERM_COUNT 4

/* Take the locks for perms (used) and unshared (refused to others) on fd,
 * then check nobody else conflicts. On conflict: -EAGAIN, no locks kept,
 * and a message naming the holder when /proc tells it. */
int image_lock(int fd, const char *path, unsigned perms, unsigned unshared,
               struct scuse_err *err);

#endif
