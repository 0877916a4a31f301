/* failio.c: an LD_PRELOAD shim for tests/io_fault.sh. On the MPI rank given by FAILIO_RANK
 * (PMI_RANK), every write to a file whose name ends with FAILIO_SUFFIX fails with EIO. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int targeted(int fd) {
    const char *rank = getenv("FAILIO_RANK"), *suffix = getenv("FAILIO_SUFFIX");
    const char *me = getenv("PMI_RANK");
    if (!rank || !suffix || !me || strcmp(rank, me) != 0) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = '\0';
    size_t len = strlen(path), sl = strlen(suffix);
    return len >= sl && strcmp(path + len - sl, suffix) == 0;
}

#define WRAP(name, ret, params, args)                                                              \
    ret name params {                                                                              \
        static ret(*real) params;                                                                  \
        if (!real) real = (ret(*) params)dlsym(RTLD_NEXT, #name);                                  \
        if (targeted(fd)) {                                                                        \
            errno = EIO;                                                                           \
            return -1;                                                                             \
        }                                                                                          \
        return real args;                                                                          \
    }

WRAP(write, ssize_t, (int fd, const void *buf, size_t count), (fd, buf, count))
WRAP(pwrite, ssize_t, (int fd, const void *buf, size_t count, off_t off), (fd, buf, count, off))
WRAP(pwrite64, ssize_t, (int fd, const void *buf, size_t count, off_t off), (fd, buf, count, off))
