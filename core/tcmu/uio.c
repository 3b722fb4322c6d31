#define _GNU_SOURCE
#include "tcmu/uio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tcmu/fsutil.h"
#include "util/log.h"

#define UIO_PREFIX "tcm-user/"

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* Canonical decimal of at most max: digits only, no leading zero. */
static bool parse_dec(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0 || n > 10 || (s[0] == '0' && n > 1))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

int tcmu_uio_parse_name(const char *s, struct tcmu_uio_name *out, struct scuse_err *err)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(s, UIO_PREFIX, strlen(UIO_PREFIX)) != 0)
        return -ENODEV;
    const char *p = s + strlen(UIO_PREFIX);
    size_t n = strlen(p);
    /* sysfs ends the name with a newline; a dev_config written with
     * `echo` into attrib/dev_config keeps its own (the kernel stores the
     * write as is), which can make two. */
    for (int i = 0; i < 2 && n && p[n - 1] == '\n'; i++)
        n--;
    if (!printable(p, n))
        return err_set(err, -EINVAL, "UIO name '%s': control characters", s);
    const char *slash = memchr(p, '/', n);
    uint64_t hba;
    if (!slash || !parse_dec(p, (size_t)(slash - p), UINT32_MAX, &hba))
        return err_set(err, -EINVAL, "UIO name '%.*s': no HBA number after '" UIO_PREFIX "'",
                       (int)(n + strlen(UIO_PREFIX)), s);
    out->hba = (uint32_t)hba;
    const char *dev = slash + 1, *end = p + n;
    const char *dev_end = memchr(dev, '/', (size_t)(end - dev));
    if (!dev_end)
        dev_end = end;
    size_t dev_len = (size_t)(dev_end - dev);
    if (dev_len == 0 || dev_len >= sizeof(out->dev))
        return err_set(err, -EINVAL, "UIO name '%.*s': device name of %zu bytes",
                       (int)(end - s), s, dev_len);
    memcpy(out->dev, dev, dev_len);
    if (dev_end == end)
        return 0;
    const char *cfg = dev_end + 1;
    size_t cfg_len = (size_t)(end - cfg);
    if (cfg_len == 0 || cfg_len >= sizeof(out->config))
        return err_set(err, -EINVAL, "UIO name '%.*s': dev_config of %zu bytes",
                       (int)(end - s), s, cfg_len);
    memcpy(out->config, cfg, cfg_len);
    return 0;
}

bool tcmu_uio_dirname(const char *s, unsigned *minor)
{
    uint64_t v;
    if (strncmp(s, "uio", 3) != 0 || !parse_dec(s + 3, strlen(s + 3), 1u << 20, &v))
        return false;
    *minor = (unsigned)v;
    return true;
}

int tcmu_uio_read(const char *sysfs, unsigned minor, struct tcmu_uio_dev *out,
                  struct scuse_err *err)
{
    memset(out, 0, sizeof(*out));
    out->minor = minor;
    char path[4096], buf[64];
    tcmu_pathf(path, sizeof(path), "%s/class/uio/uio%u/name", sysfs, minor);
    int r = tcmu_read_line(path, out->uio_name, sizeof(out->uio_name));
    if (r < 0)
        return err_set(err, r, "%s: %s", path, strerror(-r));
    r = tcmu_uio_parse_name(out->uio_name, &out->name, err);
    if (r < 0)
        return r;
    tcmu_pathf(path, sizeof(path), "%s/class/uio/uio%u/maps/map0/size", sysfs, minor);
    r = tcmu_read_line(path, buf, sizeof(buf));
    if (r < 0)
        return err_set(err, r, "%s: %s", path, strerror(-r));
    unsigned long long size;
    if (!tcmu_parse_u64(buf, &size) || size == 0 || size > SIZE_MAX)
        return err_set(err, -EINVAL, "%s: '%s' is not a map size", path, buf);
    out->map_size = size;
    return 0;
}

static int by_minor(const void *a, const void *b)
{
    const struct tcmu_uio_dev *x = a, *y = b;
    return x->minor < y->minor ? -1 : x->minor > y->minor;
}

int tcmu_uio_scan(const char *sysfs, struct tcmu_uio_dev **out, size_t *n, struct scuse_err *err)
{
    *out = NULL;
    *n = 0;
    char path[4096];
    tcmu_pathf(path, sizeof(path), "%s/class/uio", sysfs);
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT)
            return 0; /* uio not loaded: no devices */
        return err_set(err, -errno, "%s: %s", path, strerror(errno));
    }
    struct tcmu_uio_dev *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        unsigned minor;
        if (!tcmu_uio_dirname(de->d_name, &minor))
            continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 8;
            struct tcmu_uio_dev *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                free(v);
                closedir(d);
                return err_set(err, -ENOMEM, "out of memory listing %s", path);
            }
            v = nv;
        }
        struct scuse_err e = { 0 };
        int r = tcmu_uio_read(sysfs, minor, &v[cnt], &e);
        if (r == 0)
            cnt++;
        else if (r != -ENODEV)
            log_warn("tcmu: %s", e.msg); /* may be going away: skipped */
    }
    closedir(d);
    if (cnt)
        qsort(v, cnt, sizeof(*v), by_minor);
    *out = v;
    *n = cnt;
    return 0;
}

int tcmu_uio_open(const char *dev_dir, unsigned minor, uint64_t size, int *fd, void **map,
                  struct scuse_err *err)
{
    char path[4096];
    tcmu_pathf(path, sizeof(path), "%s/uio%u", dev_dir, minor);
    int f = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (f < 0)
        return err_set(err, -errno, "%s: %s", path, strerror(errno));
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        close(f);
        return err_set(err, -e, "%s: cannot map %" PRIu64 " bytes: %s", path, size, strerror(e));
    }
    *fd = f;
    *map = m;
    return 0;
}

void tcmu_uio_close(int fd, void *map, uint64_t size)
{
    if (map)
        munmap(map, size);
    if (fd >= 0)
        close(fd);
}

int tcmu_uio_kick(int fd, uint64_t map_size)
{
    uint32_t one = 1;
    ssize_t w;
    do {
        w = pwrite(fd, &one, sizeof(one), (off_t)map_size);
        if (w < 0 && errno == ESPIPE) /* a device without positional writes */
            w = write(fd, &one, sizeof(one));
    } while (w < 0 && errno == EINTR);
    return w == (ssize_t)sizeof(one) ? 0 : w < 0 ? -errno : -EIO;
}

void tcmu_uio_ack(int fd)
{
    uint32_t count;
    ssize_t r;
    do {
        r = read(fd, &count, sizeof(count));
    } while (r < 0 && errno == EINTR);
}
