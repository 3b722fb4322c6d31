/* Small files of sysfs and configfs: read whole, written in one write()
 * (configfs hands each write() to the attribute's store as is). */
#ifndef SCUSE_TCMU_FSUTIL_H
#define SCUSE_TCMU_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>

/* Read path into buf (NUL-terminated, at most len - 1 bytes). Returns
 * the length, -E2BIG when the file holds more, or -errno. */
int tcmu_read_file(const char *path, char *buf, size_t len);
/* The same, then one trailing newline removed. */
int tcmu_read_line(const char *path, char *buf, size_t len);
/* Write value with one write() (O_CREAT|O_TRUNC, as `echo v > path`).
 * Returns 0 or -errno (the attribute's store refused: its errno). */
int tcmu_write_file(const char *path, const char *value);
/* Parse a whole unsigned number (decimal, or hex with 0x); false when
 * there is anything else or it does not fit. */
bool tcmu_parse_u64(const char *s, unsigned long long *out);

/* snprintf for paths (vsnprintf underneath, so callers need not check a
 * truncation no real path reaches: a cut path just fails to open).
 * Returns the length, or -ENAMETOOLONG when it did not fit. */
int tcmu_pathf(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
