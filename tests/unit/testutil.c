/* Helpers shared by the unit test programs; see testutil.h.
 *
 * The scratch directory is a static of this file: each unit test is one
 * program with one directory, made by its group setup and removed by its
 * group teardown, so there is nothing for a second user to trip over. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "testutil.h"

static char dir[512];

char *tu_mkdtemp(char *buf, size_t size, const char *prefix)
{
    size_t n = strlen(prefix);
    if (n + 7 > size) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    memcpy(buf, prefix, n);
    memset(buf + n, 'X', 6);       /* the part mkdtemp replaces */
    buf[n + 6] = 0;
    return mkdtemp(buf);
}

int tu_dir_make(const char *name)
{
    const char *tmp = getenv("TMPDIR");
    char prefix[sizeof(dir)], tmpl[sizeof(dir)];
    snprintf(prefix, sizeof(prefix), "%s/scuse-test-%s-", tmp && *tmp ? tmp : "/tmp", name);
    if (!tu_mkdtemp(tmpl, sizeof(tmpl), prefix)) {
        fprintf(stderr, "mkdtemp %s: %s\n", tmpl, strerror(errno));
        return -1;
    }
    char *abs = realpath(tmpl, NULL);
    if (!abs || strlen(abs) >= sizeof(dir)) {
        fprintf(stderr, "realpath %s: %s\n", tmpl, abs ? "too long" : strerror(errno));
        free(abs);
        return -1;
    }
    strcpy(dir, abs);
    free(abs);
    return 0;
}

const char *tu_dir(void)
{
    return dir;
}

int tu_dir_remove(void)
{
    if (!dir[0] || getenv("SCUSE_TEST_KEEP"))
        return 0;
    char cmd[sizeof(dir) + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
        return -1;
    }
    dir[0] = '\0';
    return 0;
}

int tu_teardown(void **state)
{
    (void)state;
    return tu_dir_remove();
}

const char *tu_path(const char *name)
{
    static char bufs[8][sizeof(dir) + 512];
    static unsigned k;
    char *p = bufs[__atomic_fetch_add(&k, 1, __ATOMIC_RELAXED) & 7];
    snprintf(p, sizeof(bufs[0]), "%s/%s", dir, name);
    return p;
}

static int vsh(const char *fmt, va_list ap, char **cmd_out)
{
    char *cmd, *full;
    assert_true(vasprintf(&cmd, fmt, ap) >= 0);
    assert_true(asprintf(&full, "cd '%s' && (%s) >>log.txt 2>&1", dir, cmd) >= 0);
    int r = system(full);
    free(full);
    *cmd_out = cmd;
    return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

int tu_sh(const char *fmt, ...)
{
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    int r = vsh(fmt, ap, &cmd);
    va_end(ap);
    free(cmd);
    return r;
}

void tu_run(const char *fmt, ...)
{
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    int r = vsh(fmt, ap, &cmd);
    va_end(ap);
    char shown[1024];
    snprintf(shown, sizeof(shown), "%s", cmd);
    free(cmd);
    if (r != 0)
        fail_msg("command failed (%d, output in %s/log.txt): %s", r, dir, shown);
}

bool tu_have_qemu(void)
{
    return system("qemu-img --version >/dev/null 2>&1 && qemu-io --version >/dev/null 2>&1") == 0;
}

void tu_require_qemu(void)
{
    if (tu_have_qemu())
        return;
    /* 77: the skip code tests/CMakeLists.txt gives ctest; build.sh test
     * fails on any skip. stdout first, so cmocka's lines come before. */
    fflush(stdout);
    fprintf(stderr, "SKIP: not found: qemu-img, qemu-io (qemu-utils): they make and judge this "
                    "program's images\n");
    exit(77);
}

int tu_qemu_setup(const char *name, uint64_t *seed, uint64_t dflt)
{
    tu_require_qemu();
    if (tu_dir_make(name) < 0)
        return -1;
    if (seed) {
        *seed = tu_seed(dflt);
        printf("# seed %lu, dir %s\n", (unsigned long)*seed, dir);
    }
    return 0;
}

int tu_need_qemu(void **state)
{
    (void)state;
    if (!dir[0])
        skip();
    return 0;
}

uint8_t *tu_load(const char *name, uint64_t size)
{
    uint8_t *b = malloc(size ? size : 1);
    assert_non_null(b);
    FILE *f = fopen(tu_path(name), "rb");
    assert_non_null(f);
    assert_int_equal(fread(b, 1, size, f), size);
    fclose(f);
    return b;
}

void tu_store(const char *name, const void *buf, uint64_t size)
{
    FILE *f = fopen(tu_path(name), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

uint64_t tu_rnd(uint64_t *state)
{
    uint64_t s = *state;
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    *state = s;
    return s * 0x2545F4914F6CDD1DULL;
}

uint64_t tu_below(uint64_t *state, uint64_t n)
{
    return n ? tu_rnd(state) % n : 0;
}

uint64_t tu_seed(uint64_t dflt)
{
    const char *s = getenv("SCUSE_TEST_SEED");
    uint64_t v = s ? strtoull(s, NULL, 0) : dflt;
    return v ? v : 1;
}

void tu_l2_cache(struct blk_opts *o, char *buf, size_t len, uint64_t bytes)
{
    if (!bytes)
        return;
    snprintf(buf, len, "%llu", (unsigned long long)bytes);
    o->fmt.kv[o->fmt.n].key = "l2-cache-size";
    o->fmt.kv[o->fmt.n].val = buf;
    o->fmt.n++;
}
