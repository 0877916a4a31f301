/* bench_common.h: what the model benchmarks share: the process's memory and the sgemm
 * ceiling that training throughput is compared with. */
#ifndef CCDL_BENCH_COMMON_H
#define CCDL_BENCH_COMMON_H

enum { SGEMM_N = 2048 };

/* VmRSS and VmHWM of this process in MiB (-1 if unknown). */
void memory_status(double *rss, double *hwm);

/* Operands of a SGEMM_N^3 dnnl_sgemm. */
typedef struct {
    float *a, *b, *c;
} gemm_bufs;

void gemm_bufs_init(gemm_bufs *g);
void gemm_bufs_free(gemm_bufs *g);
/* Seconds of one dnnl_sgemm at the current OpenMP thread count. */
double sgemm_once(const gemm_bufs *g);
/* Its GFLOP/s for a time from sgemm_once. */
double sgemm_gflops(double seconds);

#endif
