/* The control socket: a listening unix socket, its clients, and the
 * framing of their lines. One epoll set holds it all; the daemon's loop
 * watches that set's fd and calls ctl_server_handle() on its own thread,
 * which is where the backend's callbacks run. Events may come from any
 * thread (a guest's eject request arrives on a dispatcher worker), so
 * the client list and the output buffers are under a mutex; input and
 * the calls into the protocol are the loop thread's alone. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "util/unix_listen.h"
#include "util/log.h"

#define MAX_CLIENTS 64
#define OUT_MAX (4u << 20)          /* a client that reads nothing is dropped past this */

struct client {
    int fd;
    bool discarding;                /* skipping the rest of an oversize line */
    bool eof;
    size_t in_len;
    char in[CTL_LINE_MAX + 2];      /* a full line, its newline, and one byte to see more */
    /* under the server's lock */
    char *out;
    size_t out_len, out_cap;
    bool want_out;                  /* EPOLLOUT asked for */
    bool dead;
    struct client *next;
};

struct ctl_server {
    int listen_fd, epfd, wake_fd;
    char *path;
    const struct ctl_backend *be;
    void *opaque;
    char *greeting;
    pthread_mutex_t lock;
    struct client *clients;
    unsigned nclients;
};

/* epoll tags besides clients */
static char tag_listen, tag_wake;

/* Only its owner (or the named group) may connect: the mode is set
 * before the socket file appears (util/unix_listen). */
static int listen_on(struct ctl_server *s, const struct ctl_server_config *cfg,
                     struct scuse_err *err)
{
    struct unix_listen_opts o = {
        .type_flags = SOCK_NONBLOCK,
        .backlog = 16,
        .mode = cfg->mode ? cfg->mode : cfg->have_gid ? 0660 : 0600,
        .have_gid = cfg->have_gid,
        .gid = cfg->gid,
    };
    s->listen_fd = unix_listen(cfg->path, &o, err);
    if (s->listen_fd < 0)
        return s->listen_fd;
    s->path = strdup(cfg->path);
    if (!s->path) {
        unlink(cfg->path);
        return err_set(err, -ENOMEM, "out of memory");
    }
    return 0;
}

static int watch(struct ctl_server *s, int fd, void *tag, uint32_t events, int op)
{
    struct epoll_event ev = { .events = events, .data.ptr = tag };
    return epoll_ctl(s->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int ctl_server_create(const struct ctl_server_config *cfg, const struct ctl_backend *be,
                      void *opaque, struct ctl_server **out, struct scuse_err *err)
{
    *out = NULL;
    struct ctl_server *s = calloc(1, sizeof(*s));
    if (!s)
        return err_set(err, -ENOMEM, "out of memory");
    s->listen_fd = s->epfd = s->wake_fd = -1;
    s->be = be;
    s->opaque = opaque;
    pthread_mutex_init(&s->lock, NULL);
    int r = listen_on(s, cfg, err);
    if (r < 0)
        goto fail;
    s->greeting = ctl_greeting(cfg->version);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!s->greeting || s->epfd < 0 || s->wake_fd < 0 ||
        watch(s, s->listen_fd, &tag_listen, EPOLLIN, EPOLL_CTL_ADD) < 0 ||
        watch(s, s->wake_fd, &tag_wake, EPOLLIN, EPOLL_CTL_ADD) < 0) {
        r = err_set(err, -errno ? -errno : -ENOMEM, "control socket: %s", strerror(errno));
        goto fail;
    }
    *out = s;
    return 0;
fail:
    ctl_server_destroy(s);
    return r;
}

int ctl_server_fd(const struct ctl_server *s) { return s->epfd; }

/* Write what the client has pending, without blocking (lock held). A
 * client that cannot take it is dead. */
static void flush_locked(struct ctl_server *s, struct client *c)
{
    while (c->out_len && !c->dead) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            c->dead = true;
            break;
        }
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
    bool want = c->out_len && !c->dead;
    if (want != c->want_out && !c->dead) {
        c->want_out = want;
        watch(s, c->fd, c, EPOLLIN | (want ? EPOLLOUT : 0), EPOLL_CTL_MOD);
    }
}

/* Queue a line for the client and write what can be written (lock held). */
static void send_locked(struct ctl_server *s, struct client *c, const char *line)
{
    if (c->dead || !line)
        return;
    size_t n = strlen(line);
    if (c->out_len + n > OUT_MAX) {
        log_warn("control: a client read nothing of %zu bytes of answers and events; "
                 "disconnected", c->out_len);
        c->dead = true;
        return;
    }
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        char *p = realloc(c->out, cap);
        if (!p) {
            c->dead = true;
            return;
        }
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, line, n);
    c->out_len += n;
    flush_locked(s, c);
}

static void send_line(struct ctl_server *s, struct client *c, char *line)
{
    pthread_mutex_lock(&s->lock);
    send_locked(s, c, line);
    pthread_mutex_unlock(&s->lock);
    free(line);
}

void ctl_server_event(struct ctl_server *s, const char *name, json_t *data)
{
    char *line = ctl_event_line(name, data);
    if (!line)
        return;
    bool reap = false;
    pthread_mutex_lock(&s->lock);
    for (struct client *c = s->clients; c; c = c->next) {
        send_locked(s, c, line);
        reap |= c->dead;
    }
    pthread_mutex_unlock(&s->lock);
    free(line);
    if (reap)
        eventfd_write(s->wake_fd, 1);
}

static void accept_clients(struct ctl_server *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_error("control: accept: %s", strerror(errno));
            if (errno != EINTR)
                return;
            continue;
        }
        if (s->nclients >= MAX_CLIENTS) {
            static const char busy[] = "{\"error\":{\"class\":\"GenericError\",\"desc\":"
                                       "\"Too many control connections\"}}\n";
            ssize_t w = send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            (void)w;
            close(fd);
            continue;
        }
        struct client *c = calloc(1, sizeof(*c));
        if (!c || watch(s, fd, c, EPOLLIN, EPOLL_CTL_ADD) < 0) {
            log_error("control: cannot take a client: %s", c ? strerror(errno) : "no memory");
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        pthread_mutex_lock(&s->lock);
        c->next = s->clients;
        s->clients = c;
        s->nclients++;
        send_locked(s, c, s->greeting);
        pthread_mutex_unlock(&s->lock);
        log_debug("control: client connected (%u)", s->nclients);
    }
}

static void answer(struct ctl_server *s, struct client *c, const char *line, size_t len)
{
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    size_t skip = 0;
    while (skip < len && (line[skip] == ' ' || line[skip] == '\t'))
        skip++;
    if (skip == len)
        return;                     /* an empty line: nothing asked */
    char *ans = ctl_handle(s->be, s->opaque, line + skip, len - skip);
    if (!ans) {
        pthread_mutex_lock(&s->lock);
        c->dead = true;
        pthread_mutex_unlock(&s->lock);
        return;
    }
    send_line(s, c, ans);
}

/* Answer every whole line in the client's buffer; past CTL_LINE_MAX
 * without a newline, an error and the rest of that line skipped. */
static void take_lines(struct ctl_server *s, struct client *c)
{
    size_t start = 0;
    for (;;) {
        char *nl = memchr(c->in + start, '\n', c->in_len - start);
        if (!nl)
            break;
        size_t len = (size_t)(nl - (c->in + start));
        if (c->discarding)
            c->discarding = false;
        else
            answer(s, c, c->in + start, len);
        start += len + 1;
    }
    memmove(c->in, c->in + start, c->in_len - start);
    c->in_len -= start;
    if (c->in_len > CTL_LINE_MAX) {
        if (!c->discarding)
            send_line(s, c, ctl_oversize_answer());
        c->discarding = true;
        c->in_len = 0;
    }
    if (c->eof && c->in_len && !c->discarding)
        answer(s, c, c->in, c->in_len);     /* the last line, without its newline */
    if (c->eof)
        c->in_len = 0;
}

static void read_client(struct ctl_server *s, struct client *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        c->eof = true;
    } else {
        c->in_len += (size_t)n;
    }
    take_lines(s, c);
    if (c->eof) {
        pthread_mutex_lock(&s->lock);
        c->dead = true;
        pthread_mutex_unlock(&s->lock);
    }
}

/* Close dead clients (loop thread). A client that ended its side still
 * gets what is pending, as far as the socket takes it now. */
static void reap(struct ctl_server *s)
{
    pthread_mutex_lock(&s->lock);
    for (struct client **p = &s->clients; *p;) {
        struct client *c = *p;
        if (!c->dead) {
            p = &c->next;
            continue;
        }
        if (c->out_len && c->eof) {
            ssize_t w = send(c->fd, c->out, c->out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
            (void)w;
        }
        *p = c->next;
        s->nclients--;
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        free(c->out);
        free(c);
    }
    pthread_mutex_unlock(&s->lock);
}

void ctl_server_handle(struct ctl_server *s)
{
    struct epoll_event evs[16];
    int n = epoll_wait(s->epfd, evs, 16, 0);
    for (int i = 0; i < n; i++) {
        void *tag = evs[i].data.ptr;
        if (tag == &tag_listen) {
            accept_clients(s);
        } else if (tag == &tag_wake) {
            eventfd_t v;
            eventfd_read(s->wake_fd, &v);
        } else {
            struct client *c = tag;
            bool dead;
            pthread_mutex_lock(&s->lock);
            if (evs[i].events & EPOLLOUT)
                flush_locked(s, c);
            dead = c->dead;
            pthread_mutex_unlock(&s->lock);
            if (!dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                read_client(s, c);
        }
        /* A client closed above may be named again later in this batch:
         * reap only after it. */
    }
    reap(s);
}

/* Before closing: give pending answers (quit's) a short while to go. */
static void drain_out(struct ctl_server *s)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        bool pending = false;
        pthread_mutex_lock(&s->lock);
        for (struct client *c = s->clients; c; c = c->next) {
            flush_locked(s, c);
            pending |= c->out_len && !c->dead;
        }
        pthread_mutex_unlock(&s->lock);
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (!pending || ms > 1000)
            return;
        poll(NULL, 0, 10);
    }
}

void ctl_server_destroy(struct ctl_server *s)
{
    if (!s)
        return;
    drain_out(s);
    while (s->clients) {
        struct client *c = s->clients;
        s->clients = c->next;
        close(c->fd);
        free(c->out);
        free(c);
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->path)
        unlink(s->path);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    pthread_mutex_destroy(&s->lock);
    free(s->greeting);
    free(s->path);
    free(s);
}
