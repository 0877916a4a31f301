/* runlock.c: see runlock.h. */
#include "runlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static void lock_path(const char *trace_path, char *out, size_t cap) {
    snprintf(out, cap, "%s.lock", trace_path);
}

/* A reader (ccdl-sweep status) holds a shared lock for microseconds: a held lock is only
 * another writer if it stays held for LOCK_PATIENCE tries, 50 ms apart. */
enum { LOCK_PATIENCE = 20 };

int runlock_acquire(const char *trace_path, ccdl_error *err) {
    char path[1200];
    lock_path(trace_path, path, sizeof path);
    for (int attempt = 0;; attempt++) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0)
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot create the run lock: %s", path,
                             strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            if (e != EWOULDBLOCK) {
                close(fd); /* no flock on this file system: run unlocked */
                return -2;
            }
            if (attempt < LOCK_PATIENCE) {
                close(fd);
                usleep(50 * 1000);
                continue;
            }
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
        /* Locked, but is it still the file at path? A finishing writer unlinks the file it
         * holds; whoever locks that unlinked file must start over on the new one. */
        struct stat held, now;
        if (fstat(fd, &held) != 0 || stat(path, &now) != 0 || held.st_ino != now.st_ino ||
            held.st_dev != now.st_dev) {
            close(fd);
            if (attempt < 100 * LOCK_PATIENCE) continue;
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: the run lock keeps changing", path);
        }
        /* who holds it, for the message above and for people; best effort (a full disk) */
        char me[256], host[200] = "?";
        gethostname(host, sizeof host - 1);
        int len = snprintf(me, sizeof me, "%ld %s\n", (long)getpid(), host);
        if (ftruncate(fd, 0) != 0 || pwrite(fd, me, (size_t)len, 0) != len) { /* best effort */
        }
        return fd;
    }
}

void runlock_release(int fd, const char *trace_path) {
    if (fd < 0) return;
    char path[1200];
    lock_path(trace_path, path, sizeof path);
    unlink(path); /* while still held: nobody takes a lock on a file about to vanish */
    close(fd);
}
