/* A listening unix stream socket, as the vhost-user and control servers
 * both need it. */
#ifndef SCUSE_UNIX_LISTEN_H
#define SCUSE_UNIX_LISTEN_H

#include <stdbool.h>
#include <sys/types.h>

#include "util/err.h"

struct unix_listen_opts {
    int type_flags;     /* more socket() type flags: SOCK_NONBLOCK */
    int backlog;
    mode_t mode;        /* 0: as the umask leaves it */
    bool have_gid;      /* give the socket file this group */
    gid_t gid;
};

/* Listen at path and return the socket (or -errno, err naming the path).
 * A socket file nobody listens on (left by a process that is gone) is
 * replaced; a live one or any other file is refused. The socket is bound
 * under a temporary name, given its mode and group, made to listen and
 * only then renamed to path: nobody connects before the mode is set, and
 * whoever sees the file can connect at once. */
int unix_listen(const char *path, const struct unix_listen_opts *o, struct scuse_err *err);

#endif
