/* bench_common.c: see bench_common.h. */
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>

#include <oneapi/dnnl/dnnl.h>

#include "util.h"

void memory_status(double *rss, double *hwm) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    *rss = *hwm = -1;
    while (f && fgets(line, sizeof line, f)) {
        long kb;
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) *rss = kb / 1024.0;
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) *hwm = kb / 1024.0;
    }
    if (f) fclose(f);
}

void gemm_bufs_init(gemm_bufs *g) {
    const size_t n2 = (size_t)SGEMM_N * SGEMM_N;
    g->a = xalloc_floats(n2), g->b = xalloc_floats(n2), g->c = xalloc_floats(n2);
    for (size_t i = 0; i < n2; i++)
        g->a[i] = 1e-3f * (float)(i % 7), g->b[i] = 1e-3f * (float)(i % 5);
}

void gemm_bufs_free(gemm_bufs *g) {
    free(g->a), free(g->b), free(g->c);
}

double sgemm_once(const gemm_bufs *g) {
    double t0 = wall_seconds();
    if (dnnl_sgemm('N', 'N', SGEMM_N, SGEMM_N, SGEMM_N, 1.0f, g->a, SGEMM_N, g->b, SGEMM_N, 0.0f,
                   g->c, SGEMM_N) != dnnl_success)
        ccdl_die("dnnl_sgemm failed");
    return wall_seconds() - t0;
}

double sgemm_gflops(double seconds) {
    return 2.0 * (double)SGEMM_N * SGEMM_N * SGEMM_N / seconds / 1e9;
}
