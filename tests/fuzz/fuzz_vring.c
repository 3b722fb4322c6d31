/* libFuzzer target: a guest that writes anything into its rings.
 *
 * The input becomes guest RAM (two regions around a hole, as QEMU maps
 * a q35 guest's low memory): descriptor table, avail ring and every
 * buffer are the fuzzer's. The first bytes choose the ring size and
 * EVENT_IDX. The device side pops until the ring is empty or broken,
 * pushes what it took, and touches every byte of every iovec it was
 * given. Besides ASan/UBSan findings the target aborts on broken
 * contracts: an iovec not inside a mapped region, a chain reported with
 * lengths that do not add up, a pop after the ring was marked broken. The
 * message checker also sees a message header and fd count made of input
 * bytes. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/log.h"
#include "vhost/mem.h"
#include "vhost/msg.h"
#include "vhost/vring.h"

#define A_SIZE 0xa000u              /* region A: [0, 40 KiB) */
#define B_GPA 0xc000u               /* hole [40, 48 KiB), region B: [48, 112 KiB) */
#define B_SIZE 0x10000u
#define RAM (B_GPA + B_SIZE)
#define UVA 0x600000000000ull
#define MAX_IOV 64

static struct vhost_mem mem;
static uint8_t *ram;

static void setup(void)
{
    log_set_level(LOG_LVL_OFF);
    int fd = memfd_create("fuzz-ram", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, RAM) < 0)
        abort();
    ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (ram == MAP_FAILED)
        abort();
    vhost_mem_init(&mem);
    struct vhu_region a = { 0, A_SIZE, UVA, 0 }, b = { B_GPA, B_SIZE, UVA + B_GPA, B_GPA };
    if (vhost_mem_add(&mem, &a, dup(fd), NULL) < 0 || vhost_mem_add(&mem, &b, dup(fd), NULL) < 0)
        abort();
    close(fd);
}

static void check_iov(const struct iovec *iov, unsigned n, size_t want)
{
    size_t sum = 0;
    for (unsigned i = 0; i < n; i++) {
        bool inside = false;
        for (unsigned r = 0; r < mem.n && !inside; r++) {
            const uint8_t *p = iov[i].iov_base;
            inside = p >= mem.r[r].host && iov[i].iov_len <= mem.r[r].size &&
                     (size_t)(p - mem.r[r].host) <= mem.r[r].size - iov[i].iov_len;
        }
        if (!inside || iov[i].iov_len == 0)
            abort();
        sum += iov[i].iov_len;
    }
    if (sum != want)
        abort();
}

static void fuzz_ring(const uint8_t *data, size_t size)
{
    memset(ram, 0, RAM);
    /* Byte 0: ring size and EVENT_IDX; the rest fills RAM from 0x100. */
    uint8_t ctl = size ? data[0] : 0;
    size_t n = size > 1 ? size - 1 : 0;
    if (n > RAM - 0x100)
        n = RAM - 0x100;
    memcpy(ram + 0x100, data + 1, n);
    struct vhost_vq vq;
    vq_init(&vq, 2);
    vq.num = (uint16_t)(1u << (ctl & 7));
    /* Rings at fixed places (region A), filled by the input like the rest. */
    vq.avail_uva = UVA + 0x100;     /* the input's first bytes: easy to reach */
    vq.desc_uva = UVA + 0x300;
    vq.used_uva = UVA + 0xc00;
    vq.addr_set = true;
    vq.event_idx = ctl & 0x08;
    vq.last_avail = vq.shadow_avail = (uint16_t)((ctl >> 4) * 3);
    if (vq_map(&vq, &mem, NULL) < 0)
        abort();
    vq.started = vq.enabled = true;
    static struct iovec iov[MAX_IOV];
    for (int k = 0; k < 128; k++) {
        struct vq_elem e;
        bool was_broken = vq.broken;
        int r = vq_pop(&vq, &mem, &e, iov, MAX_IOV);
        if (was_broken && r != 0)
            abort();
        if (r == 1) {
            check_iov(e.iov, e.n_out, e.out_len);
            check_iov(e.iov + e.n_out, e.n_in, e.in_len);
            for (unsigned i = e.n_out; i < e.n_out + e.n_in; i++)
                memset(iov[i].iov_base, 0xa5, iov[i].iov_len);
            vq_push_notify(&vq, e.head, (uint32_t)e.in_len);
        } else if (r == -EBADMSG) {
            vq_push_notify(&vq, e.head, 0);
        } else if (r == 0) {
            if (!vq_enable_kicks(&vq))
                break;
        } else {
            break;
        }
    }
    vq_destroy(&vq);
}

static void fuzz_msg(const uint8_t *data, size_t size)
{
    struct vhu_msg m;
    memset(&m, 0, sizeof(m));
    if (size < 13)
        return;
    memcpy(&m.request, data, 4);
    m.request %= 48;
    memcpy(&m.flags, data + 4, 4);
    memcpy(&m.size, data + 8, 4);
    m.size %= sizeof(m.p.raw) + 1;
    m.nfds = data[12] % (VHU_MAX_FDS + 1);
    for (unsigned i = 0; i < m.nfds; i++)
        m.fds[i] = -1;
    size_t n = size - 13 < m.size ? size - 13 : m.size;
    memcpy(m.p.raw, data + 13, n);
    vhu_msg_check(&m, NULL);
    vhu_msg_has_reply(&m);
    vhu_request_name(m.request);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ram)
        setup();
    fuzz_ring(data, size);
    fuzz_msg(data, size);
    return 0;
}
