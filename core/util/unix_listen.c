#define _GNU_SOURCE
#include "util/unix_listen.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A socket file left by a process that is gone can be replaced. */
static int clear_stale(const char *path, const struct sockaddr_un *sa, struct scuse_err *err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : err_set(err, -errno, "'%s': %s", path, strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return err_set(err, -EEXIST, "'%s' exists and is not a socket", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_set(err, -errno, "socket: %s", strerror(errno));
    int r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    int e = errno;
    close(fd);
    if (r == 0)
        return err_set(err, -EADDRINUSE, "'%s': another process is listening on it", path);
    if (e != ECONNREFUSED)
        return err_set(err, -e, "'%s': %s", path, strerror(e));
    if (unlink(path) < 0)
        return err_set(err, -errno, "'%s': cannot remove the stale socket: %s", path,
                       strerror(errno));
    return 0;
}

int unix_listen(const char *path, const struct unix_listen_opts *o, struct scuse_err *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX }, tmp = sa;
    int tl = snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.%d~", path, (int)getpid());
    if (strlen(path) >= sizeof(sa.sun_path) || tl < 0 || (size_t)tl >= sizeof(tmp.sun_path))
        return err_set(err, -ENAMETOOLONG, "'%s': a unix socket path has at most %zu bytes "
                       "here", path, sizeof(sa.sun_path) - 12);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int r = clear_stale(path, &sa, err);
    if (r < 0)
        return r;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | o->type_flags, 0);
    if (fd < 0)
        return err_set(err, -errno, "cannot create the socket: %s", strerror(errno));
    unlink(tmp.sun_path);
    if (bind(fd, (struct sockaddr *)&tmp, sizeof(tmp)) < 0) {
        r = err_set(err, -errno, "'%s': %s", tmp.sun_path, strerror(errno));
        close(fd);
        return r;
    }
    if ((o->mode && chmod(tmp.sun_path, o->mode) < 0) ||
        (o->have_gid && chown(tmp.sun_path, (uid_t)-1, o->gid) < 0) ||
        listen(fd, o->backlog) < 0 || rename(tmp.sun_path, path) < 0) {
        r = err_set(err, -errno, "'%s': %s", path, strerror(errno));
        unlink(tmp.sun_path);
        close(fd);
        return r;
    }
    return fd;
}
