/* Listening, accepting and the epoll loop of the connection. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <stdio.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/unix_listen.h"
#include "util/log.h"
#include "vhost/server.h"

#define MAX_WATCH 4

struct vhost_server {
    int listen_fd, epfd;
    char *path;
    struct vhost_server_hooks hooks;
    bool once, stop, listening;
    unsigned connections;
    struct vhost_dev *dev;
    void *dev_state;
    struct {
        int fd;
        void (*cb)(void *arg);
        void *arg;
    } watch[MAX_WATCH];
    unsigned nwatch;
};

static int set_listening(struct vhost_server *s, bool on)
{
    if (on == s->listening)
        return 0;
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = vhost_ev(VHOST_EV_LISTEN, 0) };
    if (epoll_ctl(s->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, s->listen_fd, &ev) < 0)
        return -errno;
    s->listening = on;
    return 0;
}

int vhost_server_create(const char *path, const struct vhost_server_hooks *hooks, bool once,
                        struct vhost_server **out, struct scuse_err *err)
{
    *out = NULL;
    struct vhost_server *s = calloc(1, sizeof(*s));
    if (!s)
        return err_set(err, -ENOMEM, "out of memory");
    s->listen_fd = s->epfd = -1;
    s->hooks = *hooks;
    s->once = once;
    int r;
    s->path = strdup(path);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!s->path || s->epfd < 0) {
        r = err_set(err, s->path ? -errno : -ENOMEM, "cannot create the socket: %s",
                    strerror(errno));
        goto fail;
    }
    /* One front-end at a time: a backlog of 1. */
    struct unix_listen_opts o = { .backlog = 1 };
    s->listen_fd = unix_listen(path, &o, err);
    if (s->listen_fd < 0) {
        r = s->listen_fd;
        goto fail;
    }
    if ((r = set_listening(s, true)) < 0) {
        err_set(err, r, "'%s': %s", path, strerror(-r));
        unlink(path);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->epfd >= 0)
        close(s->epfd);
    free(s->path);
    free(s);
    return r;
}

static void disconnect(struct vhost_server *s)
{
    if (!s->dev)
        return;
    vhost_dev_destroy(s->dev);
    if (s->hooks.disconnected)
        s->hooks.disconnected(s->hooks.opaque, s->dev_state);
    s->dev = NULL;
    s->dev_state = NULL;
    log_info("vhost-user: connection %u ended", s->connections);
}

void vhost_server_destroy(struct vhost_server *s)
{
    if (!s)
        return;
    disconnect(s);
    close(s->listen_fd);
    close(s->epfd);
    unlink(s->path);
    free(s->path);
    free(s);
}

int vhost_server_watch(struct vhost_server *s, int fd, void (*cb)(void *arg), void *arg)
{
    if (s->nwatch == MAX_WATCH)
        return -ENOSPC;
    struct epoll_event ev = { .events = EPOLLIN,
                              .data.u64 = vhost_ev(VHOST_EV_WATCH, s->nwatch) };
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    s->watch[s->nwatch].fd = fd;
    s->watch[s->nwatch].cb = cb;
    s->watch[s->nwatch].arg = arg;
    s->nwatch++;
    return 0;
}

void vhost_server_stop(struct vhost_server *s) { s->stop = true; }
void *vhost_server_dev_state(struct vhost_server *s) { return s->dev_state; }
unsigned vhost_server_connections(const struct vhost_server *s) { return s->connections; }

static void accept_one(struct vhost_server *s)
{
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR)
            log_error("vhost-user: accept: %s", strerror(errno));
        return;
    }
    struct scuse_err err = { 0 };
    if (vhost_dev_create(fd, s->epfd, s->hooks.ops, &s->dev, &err) < 0) {
        log_error("vhost-user: %s", err.msg);
        return;
    }
    s->dev_state = s->hooks.connected ? s->hooks.connected(s->hooks.opaque, s->dev) : NULL;
    if (s->hooks.connected && !s->dev_state) {
        vhost_dev_destroy(s->dev);
        s->dev = NULL;
        return;
    }
    vhost_dev_set_opaque(s->dev, s->dev_state);
    s->connections++;
    set_listening(s, false);
    log_info("vhost-user: connection %u accepted on %s", s->connections, s->path);
}

/* Socket messages first: a batch may hold a kick for a ring that a
 * message in the same batch configures. */
static int rank(uint64_t data)
{
    unsigned kind = (unsigned)(data >> 32);
    return kind == VHOST_EV_SOCK || kind == VHOST_EV_LISTEN || kind == VHOST_EV_WATCH ? 0 : 1;
}

int vhost_server_run(struct vhost_server *s)
{
    struct epoll_event evs[32];
    while (!s->stop) {
        int n = epoll_wait(s->epfd, evs, 32, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_error("vhost-user: epoll_wait: %s", strerror(errno));
            return -errno;
        }
        bool ended = false;
        for (int pass = 0; pass < 2 && !ended && !s->stop; pass++) {
            for (int i = 0; i < n && !ended && !s->stop; i++) {
                uint64_t data = evs[i].data.u64;
                if (rank(data) != pass)
                    continue;
                uint32_t arg = (uint32_t)data;
                switch ((enum vhost_ev_kind)(data >> 32)) {
                case VHOST_EV_LISTEN:
                    if (!s->dev)
                        accept_one(s);
                    break;
                case VHOST_EV_SOCK:
                    if (s->dev && vhost_dev_handle(s->dev) < 0) {
                        disconnect(s);
                        ended = true;
                    }
                    break;
                case VHOST_EV_KICK:
                    if (s->dev)
                        vhost_dev_kick(s->dev, arg);
                    break;
                case VHOST_EV_WAKE:
                    if (s->dev)
                        vhost_dev_wake(s->dev);
                    break;
                case VHOST_EV_WATCH:
                    if (arg < s->nwatch)
                        s->watch[arg].cb(s->watch[arg].arg);
                    break;
                }
            }
        }
        /* Events of the batch after a disconnect name fds of the old
         * connection: dropped with the rest of the batch. */
        if (ended) {
            if (s->once)
                break;
            int r = set_listening(s, true);
            if (r < 0) {
                log_error("vhost-user: cannot listen again: %s", strerror(-r));
                return r;
            }
        }
    }
    return 0;
}
