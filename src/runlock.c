/* runlock.c: see runlock.h. */
#include "runlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static void lock_path(const char *trace_path, char *out, size_t cap) {
    snprintf(out, cap, "%s.lock", trace_path);
}

int runlock_acquire(const char *trace_path, ccdl_error *err) {
    char path[1200];
    lock_path(trace_path, path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot create the run lock: %s", path,
                         strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            char holder[256] = "";
            ssize_t n = read(fd, holder, sizeof holder - 1);
            holder[n > 0 ? n : 0] = '\0';
            holder[strcspn(holder, "\n")] = '\0';
            close(fd);
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "%s: another ccdl run is writing this trace (pid and host: %s); "
                             "refusing to start",
                             trace_path, holder[0] ? holder : "unknown");
        }
        close(fd); /* no flock on this file system: run unlocked */
        return -2;
    }
    /* who holds it, for the message above and for people; best effort (a full disk) */
    char me[256], host[200] = "?";
    gethostname(host, sizeof host - 1);
    int len = snprintf(me, sizeof me, "%ld %s\n", (long)getpid(), host);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, me, (size_t)len, 0) != len) { /* best effort */
    }
    return fd;
}

void runlock_release(int fd, const char *trace_path) {
    if (fd < 0) return;
    char path[1200];
    lock_path(trace_path, path, sizeof path);
    unlink(path); /* while still held: nobody takes a lock on a file about to vanish */
    close(fd);
}
