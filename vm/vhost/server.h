/* The vhost-user listening socket and the loop that serves one front-end
 * connection at a time (QEMU connects as the client). While a connection
 * lives the listening socket is not watched, so a second front-end waits
 * in the backlog; when the connection ends everything of it is released
 * and the next one is accepted (or the loop ends, with `once`). */
#ifndef SCUSE_VHOST_SERVER_H
#define SCUSE_VHOST_SERVER_H

#include <stdbool.h>

#include "util/err.h"
#include "vhost/dev.h"

struct vhost_server;

struct vhost_server_hooks {
    const struct vhost_dev_ops *ops;
    /* A front-end connected: make the device state ops receive as opaque
     * (NULL refuses the connection). */
    void *(*connected)(void *opaque, struct vhost_dev *dev);
    /* Its connection ended and every ring is stopped: free that state. */
    void (*disconnected)(void *opaque, void *dev_state);
    void *opaque;
};

/* Listen on path: a stale socket file (nobody accepting) is replaced;
 * a live one or another kind of file is refused. */
int vhost_server_create(const char *path, const struct vhost_server_hooks *hooks, bool once,
                        struct vhost_server **out, struct scuse_err *err);
/* Disconnects the front-end if one is connected, closes and unlinks the
 * socket. */
void vhost_server_destroy(struct vhost_server *s);

/* Watch another fd in the loop (a signalfd): cb runs on the loop thread
 * when it is readable. At most 4. */
int vhost_server_watch(struct vhost_server *s, int fd, void (*cb)(void *arg), void *arg);
/* Serve until vhost_server_stop() (from a callback) or, with once, the
 * end of the first connection. */
int vhost_server_run(struct vhost_server *s);
void vhost_server_stop(struct vhost_server *s);
/* The connected front-end's device state (from connected()), or NULL. */
void *vhost_server_dev_state(struct vhost_server *s);
unsigned vhost_server_connections(const struct vhost_server *s);

#endif
