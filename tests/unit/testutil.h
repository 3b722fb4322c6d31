/* Helpers shared by the unit test programs (tu_ prefix, linked into each).
 * Usage: group setup tu_dir_make("name") (or tu_qemu_setup where qemu-img judges, with
 * tu_need_qemu as per-test setup); tests use tu_path/tu_sh/tu_run/tu_load/tu_store and
 * tu_rnd(&state) seeded by tu_seed(default); group teardown tu_teardown (tu_dir_remove). */
#ifndef SCUSE_TESTUTIL_H
#define SCUSE_TESTUTIL_H

#include <stdbool.h>
#include <stdint.h>

#include "blk/blk.h"

/* ---- The scratch directory: one per test program, kept in testutil.c ---- */

/* Makes a fresh ${TMPDIR:-/tmp}/scuse-test-NAME-<random> (absolute: tests
 * may chdir). Returns 0, or -1 with the reason on stderr. */
int tu_dir_make(const char *name);
/* mkdtemp() of PREFIX followed by six random characters, into buf. */
char *tu_mkdtemp(char *buf, size_t size, const char *prefix);
/* The directory; "" until tu_dir_make succeeds. */
const char *tu_dir(void);
/* Removes the directory and all in it, unless SCUSE_TEST_KEEP is set (to
 * look at the images and log.txt afterwards). Returns 0, or -1 with a
 * message on stderr. Nothing to do when no directory was made. */
int tu_dir_remove(void);
/* cmocka group teardown that only calls tu_dir_remove. */
int tu_teardown(void **state);
/* DIR/name, in one of eight rotating buffers: valid for the next 7 calls. */
const char *tu_path(const char *name);

/* ---- Shell commands (qemu-img, qemu-io) run in the directory ---- */

/* Runs the command with `sh -c` in the directory, output appended to
 * DIR/log.txt. Returns its exit status, -1 when it did not exit. */
int tu_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* tu_sh that must succeed: any other status fails the test. */
void tu_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* qemu-img and qemu-io are installed. */
bool tu_have_qemu(void);
/* Without them, ends the program with exit status 77 (ctest's skip code
 * for these tests) after one line naming them: a program judged by
 * qemu-img is skipped as a whole, never passed with its tests unrun. */
void tu_require_qemu(void);
/* Group setup of a program whose tests are judged by qemu-img:
 * tu_require_qemu, then makes the directory and, when seed is not NULL,
 * sets *seed = tu_seed(dflt) and prints "# seed N, dir DIR". Returns 0 or -1. */
int tu_qemu_setup(const char *name, uint64_t *seed, uint64_t dflt);
/* cmocka per-test setup: skips the test when no directory was made (a
 * group setup that failed half-way). */
int tu_need_qemu(void **state);

/* ---- Whole files in the directory (failures fail the test) ---- */

/* The first size bytes of DIR/name, in a malloc'd buffer. */
uint8_t *tu_load(const char *name, uint64_t size);
/* DIR/name becomes exactly these size bytes. */
void tu_store(const char *name, const void *buf, uint64_t size);

/* ---- xorshift64*: reproducible test shapes, state kept by the caller ---- */

uint64_t tu_rnd(uint64_t *state);
/* Uniform enough in [0, n); 0 when n is 0. */
uint64_t tu_below(uint64_t *state, uint64_t n);
/* SCUSE_TEST_SEED (strtoull base 0) when set, else dflt; never 0, which
 * would keep the generator at 0 forever. */
uint64_t tu_seed(uint64_t dflt);

/* qcow2's l2-cache-size open option in o (bytes; 0 leaves the default).
 * buf holds the number's text and must outlive the open. */
void tu_l2_cache(struct blk_opts *o, char *buf, size_t len, uint64_t bytes);

#endif
