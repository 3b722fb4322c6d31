/* The test front-end (see front.h). Ring layouts and message payloads are
 * built from <linux/virtio_ring.h>, <linux/vhost_types.h> and the
 * protocol description in vm/vhost/proto.h. */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/virtio_ring.h>

#include "front.h"
#include "testutil.h"

/* ---- the back-end process ---- */

void f_server_start(struct f_server *s, const char *name, ...)
{
    const char *bin = getenv("SCUSE");
    if (!bin)
        fail_msg("SCUSE (the scuse binary) is not set");
    snprintf(s->sock, sizeof(s->sock), "%s", tu_path(name));
    strncat(s->sock, ".sock", sizeof(s->sock) - strlen(s->sock) - 1);
    snprintf(s->log, sizeof(s->log), "%s", tu_path(name));
    strncat(s->log, ".log", sizeof(s->log) - strlen(s->log) - 1);
    const char *argv[64];
    unsigned n = 0;
    argv[n++] = bin;
    argv[n++] = "serve";
    argv[n++] = "--vhost-user-scsi";
    argv[n++] = s->sock;
    argv[n++] = "-vv";
    va_list ap;
    va_start(ap, name);
    for (const char *a; (a = va_arg(ap, const char *)) && n < 63;)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    unlink(s->sock);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        struct stat st;
        if (stat(s->sock, &st) == 0)
            return;
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid)
            fail_msg("scuse serve exited (status 0x%x) before its socket appeared; see %s",
                     status, s->log);
        usleep(10000);
    }
    fail_msg("scuse serve made no socket in 10 s");
}

int f_server_wait(struct f_server *s)
{
    int status = 0;
    for (int i = 0; i < F_TIMEOUT_MS / 10; i++) {
        pid_t p = waitpid(s->pid, &status, WNOHANG);
        if (p == s->pid) {
            s->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(10000);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    fail_msg("scuse serve did not exit within 10 s");
    return -1;
}

int f_server_stop(struct f_server *s, bool term)
{
    if (term)
        kill(s->pid, SIGTERM);
    return f_server_wait(s);
}

void f_server_signal(struct f_server *s, int sig) { kill(s->pid, sig); }

bool f_log_has(const struct f_server *s, const char *text)
{
    FILE *fp = fopen(s->log, "r");
    if (!fp)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), fp))
        found = strstr(line, text) != NULL;
    fclose(fp);
    return found;
}

/* ---- connection, RAM ---- */

void f_connect(struct front *f, const struct f_server *s)
{
    memset(f, 0, sizeof(*f));
    f->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->sock >= 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(s->sock) >= sizeof(sa.sun_path))
        fail_msg("socket path too long: %s", s->sock);
    memcpy(sa.sun_path, s->sock, strlen(s->sock) + 1);
    int r = -1;
    for (int i = 0; i < 100 && r < 0; i++) {
        r = connect(f->sock, (struct sockaddr *)&sa, sizeof(sa));
        if (r < 0)
            usleep(10000);
    }
    if (r < 0)
        fail_msg("connect %s: %s", s->sock, strerror(errno));
    f->memfd = memfd_create("guest-ram", MFD_CLOEXEC);
    assert_true(f->memfd >= 0);
    assert_int_equal(ftruncate(f->memfd, F_RAM_SIZE), 0);
    f->ram = mmap(NULL, F_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
    assert_true(f->ram != MAP_FAILED);
    f->alloc_next = 1 << 20;
    for (unsigned i = 0; i < F_MAX_VQS; i++) {
        struct f_vq *q = &f->vq[i];
        q->index = i;
        q->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        q->err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
}

void f_disconnect(struct front *f)
{
    if (f->sock >= 0)
        close(f->sock);
    f->sock = -1;
    for (unsigned i = 0; i < F_MAX_VQS; i++) {
        close(f->vq[i].kick);
        close(f->vq[i].call);
        close(f->vq[i].err);
    }
    munmap(f->ram, F_RAM_SIZE);
    close(f->memfd);
}

void *f_ptr(struct front *f, uint64_t gpa)
{
    assert_true(gpa < F_RAM_SIZE);
    return f->ram + gpa;
}

uint64_t f_alloc(struct front *f, size_t len, size_t align)
{
    uint64_t a = (f->alloc_next + align - 1) / align * align;
    if (a + len > F_RAM_SIZE) {
        /* Wrap above the rings: buffers are reused in turns. */
        a = f->alloc_floor ? f->alloc_floor : (uint64_t)(1 << 20);
        a = (a + align - 1) / align * align;
    }
    f->alloc_next = a + len;
    return a;
}

/* ---- messages ---- */

int f_send(struct front *f, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
           const int *fds, unsigned nfds)
{
    uint32_t hdr[3] = { req, flags, size };
    struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)payload, size } };
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(16 * sizeof(int))];
    } control;
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
    if (nfds) {
        mh.msg_control = control.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    ssize_t n = sendmsg(f->sock, &mh, MSG_NOSIGNAL);
    return n == (ssize_t)(sizeof(hdr) + size) ? 0 : -errno;
}

static void read_exact(struct front *f, void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        struct pollfd p = { f->sock, POLLIN, 0 };
        if (poll(&p, 1, F_TIMEOUT_MS) != 1)
            fail_msg("no reply from the back-end within %d ms", F_TIMEOUT_MS);
        ssize_t n = recv(f->sock, (char *)buf + done, len - done, 0);
        if (n <= 0)
            fail_msg("the back-end closed the connection instead of replying");
        done += (size_t)n;
    }
}

void f_reply(struct front *f, uint32_t req, void *payload, uint32_t want)
{
    uint32_t hdr[3];
    read_exact(f, hdr, sizeof(hdr));
    assert_int_equal(hdr[0], req);
    assert_int_equal(hdr[1], VHU_VERSION | VHU_FLAG_REPLY);
    if (hdr[2] != want)
        fail_msg("reply to %u: %u bytes, expected %u", req, hdr[2], want);
    if (want)
        read_exact(f, payload, want);
}

uint64_t f_ack(struct front *f, uint32_t req, const void *payload, uint32_t size,
               const int *fds, unsigned nfds)
{
    assert_int_equal(f_send(f, req, VHU_VERSION | VHU_FLAG_NEED_REPLY, payload, size, fds, nfds),
                     0);
    uint64_t v = ~0ull;
    f_reply(f, req, &v, sizeof(v));
    return v;
}

uint64_t f_get_u64(struct front *f, uint32_t req)
{
    assert_int_equal(f_send(f, req, VHU_VERSION, NULL, 0, NULL, 0), 0);
    uint64_t v;
    f_reply(f, req, &v, sizeof(v));
    return v;
}

bool f_closed(struct front *f, int timeout_ms)
{
    struct pollfd p = { f->sock, POLLIN, 0 };
    if (poll(&p, 1, timeout_ms) != 1)
        return false;
    char c;
    ssize_t n = recv(f->sock, &c, 1, MSG_DONTWAIT);
    /* Closed with our bytes unread: a reset rather than an end of file. */
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static void send_ok(struct front *f, uint32_t req, const void *payload, uint32_t size,
                    const int *fds, unsigned nfds)
{
    assert_int_equal(f_send(f, req, VHU_VERSION, payload, size, fds, nfds), 0);
}

static void vring_file(struct front *f, uint32_t req, unsigned i, int fd)
{
    uint64_t v = i;
    send_ok(f, req, &v, sizeof(v), &fd, 1);
}

void f_init_device(struct front *f, unsigned nvqs)
{
    f->features = f_get_u64(f, VHU_GET_FEATURES);
    f->protocol_features = f_get_u64(f, VHU_GET_PROTOCOL_FEATURES);
    uint64_t want = f->protocol_features & ((1ull << VHU_PROTO_MQ) | (1ull << VHU_PROTO_REPLY_ACK) |
                                            (1ull << VHU_PROTO_CONFIGURE_MEM_SLOTS));
    send_ok(f, VHU_SET_PROTOCOL_FEATURES, &want, sizeof(want), NULL, 0);
    f->protocol_features = want;
    assert_true(f_get_u64(f, VHU_GET_QUEUE_NUM) >= nvqs);
    assert_true(f_get_u64(f, VHU_GET_MAX_MEM_SLOTS) >= 2);
    send_ok(f, VHU_SET_OWNER, NULL, 0, NULL, 0);
    assert_int_equal(f_get_u64(f, VHU_GET_FEATURES), f->features);
    for (unsigned i = 0; i < nvqs; i++) {
        vring_file(f, VHU_SET_VRING_CALL, i, f->vq[i].call);
        vring_file(f, VHU_SET_VRING_ERR, i, f->vq[i].err);
    }
}

void f_add_memory(struct front *f)
{
    struct vhu_mem_reg m = { 0 };
    m.region = (struct vhu_region){ 0, F_HOLE_START, F_UVA_BASE, 0 };
    assert_int_equal(f_ack(f, VHU_ADD_MEM_REG, &m, sizeof(m), &f->memfd, 1), 0);
    m.region = (struct vhu_region){ F_HOLE_END, F_RAM_SIZE - F_HOLE_END,
                                    F_UVA_BASE + F_HOLE_END, F_HOLE_END };
    assert_int_equal(f_ack(f, VHU_ADD_MEM_REG, &m, sizeof(m), &f->memfd, 1), 0);
}

void f_set_features(struct front *f, uint64_t features)
{
    send_ok(f, VHU_SET_FEATURES, &features, sizeof(features), NULL, 0);
}

void f_vq_setup(struct front *f, unsigned i, uint16_t num, uint16_t base, bool kick)
{
    struct f_vq *q = &f->vq[i];
    q->num = num;
    q->desc_gpa = f_alloc(f, 16u * num, 4096);
    q->avail_gpa = f_alloc(f, 6 + 2u * num, 2);
    q->used_gpa = f_alloc(f, 6 + 8u * num, 4096);
    if (f->alloc_next > f->alloc_floor)
        f->alloc_floor = f->alloc_next;
    memset(f_ptr(f, q->desc_gpa), 0, 16u * num);
    memset(f_ptr(f, q->avail_gpa), 0, 6 + 2u * num);
    memset(f_ptr(f, q->used_gpa), 0, 6 + 8u * num);
    struct vring_avail *a = f_ptr(f, q->avail_gpa);
    struct vring_used *u = f_ptr(f, q->used_gpa);
    a->idx = htole16(base);
    u->idx = htole16(base);
    q->avail_idx = q->used_seen = base;
    q->nfree = 0;
    for (unsigned d = num; d-- > 0;)
        q->free_head[q->nfree++] = (uint16_t)d;
    struct vhost_vring_state st = { i, num };
    send_ok(f, VHU_SET_VRING_NUM, &st, sizeof(st), NULL, 0);
    st.num = base;
    send_ok(f, VHU_SET_VRING_BASE, &st, sizeof(st), NULL, 0);
    struct vhost_vring_addr ad = { .index = i,
                                   .desc_user_addr = F_UVA_BASE + q->desc_gpa,
                                   .used_user_addr = F_UVA_BASE + q->used_gpa,
                                   .avail_user_addr = F_UVA_BASE + q->avail_gpa };
    send_ok(f, VHU_SET_VRING_ADDR, &ad, sizeof(ad), NULL, 0);
    if (kick)
        f_vq_kick_fd(f, i);
}

void f_vq_kick_fd(struct front *f, unsigned i)
{
    vring_file(f, VHU_SET_VRING_KICK, i, f->vq[i].kick);
    f->vq[i].started = true;
}

void f_vq_call_fd(struct front *f, unsigned i) { vring_file(f, VHU_SET_VRING_CALL, i, f->vq[i].call); }

void f_vq_enable(struct front *f, unsigned i, bool on)
{
    struct vhost_vring_state st = { i, on };
    send_ok(f, VHU_SET_VRING_ENABLE, &st, sizeof(st), NULL, 0);
}

uint16_t f_vq_stop(struct front *f, unsigned i)
{
    struct vhost_vring_state st = { i, 0 };
    send_ok(f, VHU_GET_VRING_BASE, &st, sizeof(st), NULL, 0);
    f_reply(f, VHU_GET_VRING_BASE, &st, sizeof(st));
    assert_int_equal(st.index, i);
    f->vq[i].started = false;
    return (uint16_t)st.num;
}

/* ---- rings ---- */

struct vring_desc *f_desc(struct front *f, unsigned i)
{
    return f_ptr(f, f->vq[i].desc_gpa);
}

uint16_t f_desc_get(struct front *f, unsigned i)
{
    struct f_vq *q = &f->vq[i];
    if (!q->nfree)
        fail_msg("vq %u: out of descriptors", i);
    return q->free_head[--q->nfree];
}

void f_desc_put(struct front *f, unsigned i, uint16_t d) { f->vq[i].free_head[f->vq[i].nfree++] = d; }

void f_kick(struct front *f, unsigned i)
{
    assert_int_equal(eventfd_write(f->vq[i].kick, 1), 0);
}

void f_publish(struct front *f, unsigned i, uint16_t head, bool kick)
{
    struct f_vq *q = &f->vq[i];
    struct vring_avail *a = f_ptr(f, q->avail_gpa);
    a->ring[q->avail_idx % q->num] = htole16(head);
    q->avail_idx++;
    __atomic_store_n(&a->idx, htole16(q->avail_idx), __ATOMIC_RELEASE);
    if (kick)
        f_kick(f, i);
}

long long f_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

unsigned f_used(struct front *f, unsigned i, struct f_used *out, unsigned max, int timeout_ms)
{
    struct f_vq *q = &f->vq[i];
    struct vring_used *u = f_ptr(f, q->used_gpa);
    long long end = f_now_ms() + timeout_ms;
    unsigned n = 0;
    for (;;) {
        uint16_t idx = le16toh(__atomic_load_n(&u->idx, __ATOMIC_ACQUIRE));
        while (q->used_seen != idx && n < max) {
            struct vring_used_elem *e = &u->ring[q->used_seen % q->num];
            out[n].id = le32toh(e->id);
            out[n].len = le32toh(e->len);
            n++;
            q->used_seen++;
        }
        if (n || f_now_ms() >= end)
            return n;
        usleep(500);
    }
}

void f_used_wait(struct front *f, unsigned i, struct f_used *out, unsigned n)
{
    unsigned got = 0;
    long long end = f_now_ms() + F_TIMEOUT_MS;
    while (got < n && f_now_ms() < end)
        got += f_used(f, i, out + got, n - got, 100);
    if (got != n)
        fail_msg("vq %u: %u used entries of %u within %d ms", i, got, n, F_TIMEOUT_MS);
}

void f_set_used_event(struct front *f, unsigned i, uint16_t v)
{
    struct f_vq *q = &f->vq[i];
    struct vring_avail *a = f_ptr(f, q->avail_gpa);
    __atomic_store_n(&a->ring[q->num], htole16(v), __ATOMIC_RELEASE);
}

uint16_t f_avail_event(struct front *f, unsigned i)
{
    struct f_vq *q = &f->vq[i];
    struct vring_used *u = f_ptr(f, q->used_gpa);
    return le16toh(__atomic_load_n((uint16_t *)&u->ring[q->num], __ATOMIC_ACQUIRE));
}

static uint64_t counter(int fd)
{
    eventfd_t v = 0;
    return eventfd_read(fd, &v) == 0 ? v : 0;
}

uint64_t f_calls(struct front *f, unsigned i) { return counter(f->vq[i].call); }
uint64_t f_errs(struct front *f, unsigned i) { return counter(f->vq[i].err); }

