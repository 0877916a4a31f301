/* check.h: tiny assertion helpers shared by the unit tests (header-only).
 * A failed check prints file:line and the values, counts as a failure, and the test's
 * main() returns check_exit() at the end: 0 if every check passed, 1 otherwise. */
#ifndef CCDL_CHECK_H
#define CCDL_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        check_count++;                                                                             \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        check_count++;                                                                             \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, atol, rtol)                                                              \
    do {                                                                                           \
        double check_a_ = (double)(a), check_b_ = (double)(b);                                     \
        check_count++;                                                                             \
        if (!(fabs(check_a_ - check_b_) <= (atol) + (rtol)*fabs(check_b_))) {                      \
            fprintf(stderr, "%s:%d: CHECK_CLOSE failed: %s = %.12g, %s = %.12g\n", __FILE__,       \
                    __LINE__, #a, check_a_, #b, check_b_);                                         \
            check_failures++;                                                                      \
        }                                                                                          \
    } while (0)

/* Compare two float tensors elementwise; reports the worst element. */
static inline int check_tensor_at(const float *a, const float *b, size_t n, double atol,
                                  double rtol, const char *label, const char *file, int line) {
    size_t worst = 0;
    double worst_excess = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double lim = atol + rtol * fabs((double)b[i]);
        if (!(d <= lim)) {
            if (!bad || d - lim > worst_excess) worst = i, worst_excess = d - lim;
            bad = 1;
        }
    }
    check_count++;
    if (bad) {
        fprintf(stderr, "%s:%d: check_tensor %s: element %zu: %.9g vs %.9g\n", file, line, label,
                worst, (double)a[worst], (double)b[worst]);
        check_failures++;
    }
    return !bad;
}
#define check_tensor(a, b, n, atol, rtol, label)                                                   \
    check_tensor_at((a), (b), (n), (atol), (rtol), (label), __FILE__, __LINE__)

static inline int check_exit(void) {
    if (check_failures)
        fprintf(stderr, "%d of %d checks failed\n", check_failures, check_count);
    else
        fprintf(stderr, "%d checks passed\n", check_count);
    return check_failures ? 1 : 0;
}

#endif
