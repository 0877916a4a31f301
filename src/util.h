/* util.h: checked libc wrappers, the caller-provided error struct, and exit codes.
 *
 * A training binary fails fast and loudly: allocation failure is fatal (x* wrappers print
 * file:line and abort the job). Recoverable errors (bad input) travel in a ccdl_error that
 * the caller owns, jansson style, and become exit code 2 at the top. */
#ifndef CCDL_UTIL_H
#define CCDL_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Exit codes of the ccdl binary (documented in docs/cli.md). 3: stopped by a signal after
 * writing a checkpoint; `ccdl run --resume` continues the run. */
enum { CCDL_EXIT_OK = 0, CCDL_EXIT_FAILURE = 1, CCDL_EXIT_INPUT = 2, CCDL_EXIT_STOPPED = 3 };

/* Kinds of error: bad input (exit 2), a failure while running (exit 1), or a stop on a
 * signal with a checkpoint written (exit 3, resumable). */
typedef enum {
    CCDL_ERR_NONE = 0,
    CCDL_ERR_INPUT,
    CCDL_ERR_RUNTIME,
    CCDL_ERR_STOPPED
} ccdl_err_kind;

typedef struct {
    ccdl_err_kind kind;
    char text[1024]; /* one line, no trailing newline */
} ccdl_error;

/* Set err (if not NULL) to kind + printf-formatted text; returns -1 so callers can
 * `return ccdl_fail(err, ...)`. */
int ccdl_fail(ccdl_error *err, ccdl_err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ccdl_error_clear(ccdl_error *err);

/* Fatal: print "ccdl: file:line: message" and abort the whole MPI job. */
_Noreturn void ccdl_die_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define ccdl_die(...) ccdl_die_at(__FILE__, __LINE__, __VA_ARGS__)

void *xmalloc_at(size_t size, const char *file, int line);
void *xcalloc_at(size_t count, size_t size, const char *file, int line);
void *xrealloc_at(void *ptr, size_t size, const char *file, int line);
char *xstrdup_at(const char *s, const char *file, int line);
void *xmalloc_array_at(size_t count, size_t size, const char *file, int line);
#define xmalloc(size) xmalloc_at((size), __FILE__, __LINE__)
/* count * size bytes, fatal on overflow as on exhaustion (like reallocarray) */
#define xmalloc_array(count, size) xmalloc_array_at((count), (size), __FILE__, __LINE__)
#define xcalloc(count, size) xcalloc_at((count), (size), __FILE__, __LINE__)
#define xrealloc(ptr, size) xrealloc_at((ptr), (size), __FILE__, __LINE__)
#define xstrdup(s) xstrdup_at((s), __FILE__, __LINE__)

/* 64-byte aligned, zeroed allocation for float buffers (free with free()). */
float *xalloc_floats_at(size_t count, const char *file, int line);
#define xalloc_floats(count) xalloc_floats_at((count), __FILE__, __LINE__)

/* The memory this process may use: the least of physical memory, its address-space limit
 * and its cgroup's memory.max (Slurm's --mem), in bytes. */
uint64_t memory_limit_bytes(void);

/* a * b, or -1 (SIZE_MAX) when the product overflows; allocation sizes go through it. */
size_t size_mul(size_t a, size_t b);

/* Wall-clock seconds from a monotonic clock. */
double wall_seconds(void);

/* The directory part of path: "a/b.h5" -> "a", "b.h5" -> ".", "/b.h5" -> "/". */
void path_directory(const char *path, char *dir, size_t cap);

/* An input file must be a regular file: a FIFO would block the reader forever, a directory
 * reads as nothing. 0, or -1 + err (CCDL_ERR_INPUT) naming path and what it is instead. */
int check_input_file(const char *path, ccdl_error *err);

/* Read a whole text file (at most 64 MiB, no NUL bytes) into a NUL-terminated buffer
 * (caller frees). NULL + err (CCDL_ERR_INPUT, naming path) on failure. */
char *read_text_file(const char *path, size_t *len, ccdl_error *err);

#endif
