#define _GNU_SOURCE
#include "io/lock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOCK_BASE_PERM 100
#define LOCK_BASE_SHARED 200

static const char *const perm_names[LOCK_PERM_COUNT] = {
    "consistent read", "write", "write unchanged", "resize"
};

static int set_byte(int fd, int type, off_t byte)
{
    struct flock fl = { .l_type = (short)type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };
    return fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/* Does another open file description hold a lock on byte? */
static int byte_taken(int fd, off_t byte)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
        return -errno;
    return fl.l_type != F_UNLCK;
}

/* Find a process whose open files hold a lock on byte of this inode, by
 * reading /proc/PID/fdinfo lock lines ("lock: 1: OFDLCK ADVISORY READ -1
 * MAJ:MIN:INO START END"). Best effort: empty when /proc says nothing. */
static void find_holder(int fd, off_t byte, char *who, size_t len)
{
    who[0] = '\0';
    struct stat st;
    if (fstat(fd, &st) < 0)
        return;
    char want[64];
    snprintf(want, sizeof(want), "%02x:%02x:%lu ", major(st.st_dev), minor(st.st_dev),
             (unsigned long)st.st_ino);
    DIR *proc = opendir("/proc");
    if (!proc)
        return;
    struct dirent *pe;
    pid_t self = getpid();
    while (!who[0] && (pe = readdir(proc))) {
        char *end;
        long pid = strtol(pe->d_name, &end, 10);
        if (*end || pid <= 0 || pid == self)
            continue;
        char dpath[64];
        snprintf(dpath, sizeof(dpath), "/proc/%ld/fdinfo", pid);
        DIR *fdd = opendir(dpath);
        if (!fdd)
            continue;
        struct dirent *fe;
        while (!who[0] && (fe = readdir(fdd))) {
            if (fe->d_name[0] == '.')
                continue;
            char ipath[600];
            snprintf(ipath, sizeof(ipath), "%s/%s", dpath, fe->d_name);
            FILE *f = fopen(ipath, "r");
            if (!f)
                continue;
            char line[256];
            while (fgets(line, sizeof(line), f)) {
                char *at = strstr(line, want);
                long long s, e;
                if (strncmp(line, "lock:", 5) != 0 || !at ||
                    sscanf(at + strlen(want), "%lld %lld", &s, &e) != 2 || byte < s || byte > e)
                    continue;
                char cpath[64], comm[64] = "?";
                snprintf(cpath, sizeof(cpath), "/proc/%ld/comm", pid);
                FILE *c = fopen(cpath, "r");
                if (c) {
                    if (fgets(comm, sizeof(comm), c))
                        comm[strcspn(comm, "\n")] = '\0';
                    fclose(c);
                }
                snprintf(who, len, "%s (pid %ld)", comm, pid);
                break;
            }
            fclose(f);
        }
        closedir(fdd);
    }
    closedir(proc);
}

static void unlock_all(int fd)
{
    struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET,
                        .l_start = LOCK_BASE_PERM, .l_len = LOCK_BASE_SHARED + LOCK_PERM_COUNT };
    fcntl(fd, F_OFD_SETLK, &fl);
}

static int conflict(int fd, const char *path, off_t byte, const char *what, unsigned perm,
                    struct scuse_err *err)
{
    char who[128];
    find_holder(fd, byte, who, sizeof(who));
    unlock_all(fd);
    return err_set(err, -EAGAIN, "'%s': cannot take the \"%s\" lock: the image is in use by %s%s",
                   path, perm_names[perm], who[0] ? who : "another process",
                   what[0] ? what : "");
}

int image_lock(int fd, const char *path, unsigned perms, unsigned unshared, struct scuse_err *err)
{
    for (unsigned i = 0; i < LOCK_PERM_COUNT; i++) {
        int r = 0;
        if (perms & (1u << i))
            r = set_byte(fd, F_RDLCK, LOCK_BASE_PERM + i);
        if (r == 0 && (unshared & (1u << i)))
            r = set_byte(fd, F_RDLCK, LOCK_BASE_SHARED + i);
        if (r < 0) {
            unlock_all(fd);
            if (r == -EAGAIN || r == -EACCES)
                return conflict(fd, path, LOCK_BASE_PERM + i, "", i, err);
            return err_set(err, r, "'%s': cannot lock: %s", path, strerror(-r));
        }
    }
    for (unsigned i = 0; i < LOCK_PERM_COUNT; i++) {
        if (perms & (1u << i)) {
            int t = byte_taken(fd, LOCK_BASE_SHARED + i);
            if (t < 0)
                return err_set(err, t, "'%s': cannot test lock: %s", path, strerror(-t));
            if (t)
                return conflict(fd, path, LOCK_BASE_SHARED + i,
                                " (it does not share that permission; 'scuse ... -U' reads anyway)",
                                i, err);
        }
        if (unshared & (1u << i)) {
            int t = byte_taken(fd, LOCK_BASE_PERM + i);
            if (t < 0)
                return err_set(err, t, "'%s': cannot test lock: %s", path, strerror(-t));
            if (t)
                return conflict(fd, path, LOCK_BASE_PERM + i, " (it holds that permission)", i, err);
        }
    }
    return 0;
}
