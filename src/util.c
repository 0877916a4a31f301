/* util.c: see util.h. */
#include "util.h"

#include <errno.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

int ccdl_fail(ccdl_error *err, ccdl_err_kind kind, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->text, sizeof err->text, fmt, ap);
        va_end(ap);
        err->kind = kind;
        /* one line: a message that spans lines would break "one-line error" promises */
        for (char *p = err->text; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
    }
    return -1;
}

void ccdl_error_clear(ccdl_error *err) {
    if (!err) return;
    err->kind = CCDL_ERR_NONE;
    err->text[0] = '\0';
}

_Noreturn void ccdl_die_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ccdl: %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, CCDL_EXIT_FAILURE);
    exit(CCDL_EXIT_FAILURE);
}

void *xmalloc_at(size_t size, const char *file, int line) {
    void *p = malloc(size ? size : 1);
    if (!p) ccdl_die_at(file, line, "out of memory allocating %zu bytes", size);
    return p;
}

void *xmalloc_array_at(size_t count, size_t size, const char *file, int line) {
    size_t bytes = size_mul(count, size);
    if (bytes == SIZE_MAX)
        ccdl_die_at(file, line, "size overflow allocating %zu x %zu bytes", count, size);
    return xmalloc_at(bytes, file, line);
}

void *xcalloc_at(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) ccdl_die_at(file, line, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *xrealloc_at(void *ptr, size_t size, const char *file, int line) {
    void *p = realloc(ptr, size ? size : 1);
    if (!p) ccdl_die_at(file, line, "out of memory reallocating %zu bytes", size);
    return p;
}

char *xstrdup_at(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc_at(n, file, line);
    memcpy(p, s, n);
    return p;
}

float *xalloc_floats_at(size_t count, const char *file, int line) {
    void *p = NULL;
    size_t bytes = size_mul(count ? count : 1, sizeof(float));
    if (bytes > SIZE_MAX - 64)
        ccdl_die_at(file, line, "size overflow allocating %zu floats", count);
    bytes = (bytes + 63) / 64 * 64;
    if (posix_memalign(&p, 64, bytes) != 0)
        ccdl_die_at(file, line, "out of memory allocating %zu floats", count);
    memset(p, 0, bytes);
    return p;
}

size_t size_mul(size_t a, size_t b) {
    size_t r;
    return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

/* cgroup v2: the memory.max of the cgroup named in /proc/self/cgroup ("0::/path"). */
static uint64_t cgroup_memory_max(void) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return UINT64_MAX;
    char line[1024], path[1200];
    uint64_t limit = UINT64_MAX;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
            FILE *m = fopen(path, "r");
            unsigned long long v;
            if (m && fscanf(m, "%llu", &v) == 1) limit = v; /* "max" reads as no limit */
            if (m) fclose(m);
        }
    fclose(f);
    return limit;
}

uint64_t memory_limit_bytes(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t limit = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < limit)
        limit = rl.rlim_cur;
    uint64_t cg = cgroup_memory_max();
    return cg < limit ? cg : limit;
}

double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int check_input_file(const char *path, ccdl_error *err) {
    struct stat st;
    if (stat(path, &st) != 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISREG(st.st_mode)) return 0;
    const char *what = S_ISDIR(st.st_mode)    ? "a directory"
                       : S_ISFIFO(st.st_mode) ? "a FIFO"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                                              : "not a regular file";
    return ccdl_fail(err, CCDL_ERR_INPUT, "%s: is %s, not a file", path, what);
}

enum { TEXT_FILE_MAX = 64 << 20 };

char *read_text_file(const char *path, size_t *len, ccdl_error *err) {
    if (check_input_file(path, err)) return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0 || n > TEXT_FILE_MAX) break;
    }
    int bad = ferror(f), e = errno;
    fclose(f);
    const char *nul = memchr(buf, 0, n);
    if (bad || n > TEXT_FILE_MAX || nul) {
        if (bad)
            ccdl_fail(err, CCDL_ERR_INPUT, "%s: read error: %s", path, strerror(e));
        else if (nul)
            ccdl_fail(err, CCDL_ERR_INPUT, "%s: a NUL byte at offset %zu (not a text file)", path,
                      (size_t)(nul - buf));
        else
            ccdl_fail(err, CCDL_ERR_INPUT, "%s: larger than %d MiB (not a spec)", path,
                      TEXT_FILE_MAX >> 20);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

void path_directory(const char *path, char *dir, size_t cap) {
    snprintf(dir, cap, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, cap, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
}
