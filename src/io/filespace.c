/* filespace.c: see filespace.h. Linux fallocate(2); elsewhere a no-op. */
#define _GNU_SOURCE
#include "filespace.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/falloc.h>
#endif

int filespace_reserve(const char *path, uint64_t bytes) {
#if defined(FALLOC_FL_KEEP_SIZE)
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    int rc = fstat(fd, &st);
    if (rc == 0 && fallocate(fd, FALLOC_FL_KEEP_SIZE, st.st_size, (off_t)bytes) != 0) {
        rc = -1;
        /* A file system that cannot reserve: at least the free space must be there (blind
         * to quotas and to other writers, which the reservation is not). */
        struct statvfs vfs;
        if ((errno == EOPNOTSUPP || errno == ENOSYS) && fstatvfs(fd, &vfs) == 0) {
            rc = (uint64_t)vfs.f_bavail * vfs.f_frsize >= bytes ? 0 : -1;
            if (rc) errno = ENOSPC;
        }
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
#else
    (void)path;
    (void)bytes;
    return 0;
#endif
}

void filespace_release(const char *path) {
#if defined(FALLOC_FL_PUNCH_HOLE)
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    /* Blocks kept beyond the end: ext4 and xfs free them on a truncate to the same size,
     * tmpfs only on a punched hole. */
    if (fstat(fd, &st) == 0) {
        if (ftruncate(fd, st.st_size) != 0) { /* best effort */
        }
        if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, st.st_size, (off_t)1 << 30) !=
            0) { /* best effort */
        }
    }
    close(fd);
#else
    (void)path;
#endif
}
