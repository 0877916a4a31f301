/* netbench.h: latency and bandwidth between the ranks of this MPI job (`ccdl netbench`).
 *
 * MPI ping-pong between rank 0 and each other rank in turn, over a ladder of message sizes;
 * the one-way time of a size is half the median round trip. From those times it fits the
 * two figures of a network cost model t(s) = latency + s / bandwidth, for each pair and for
 * the slowest and the median pair. It measures only: no collectives, no topology, no files;
 * rank 0 prints a table or one JSON object (docs/cli.md). */
#ifndef CCDL_NETBENCH_H
#define CCDL_NETBENCH_H

#include <mpi.h>
#include <stddef.h>

#include "util.h"

/* Round trips before the timed ones at each size: first-touch, connection setup. */
#define NETBENCH_WARMUP 3
/* The default ladder runs 8 B, 64 B, .., 16 MiB: each size 8 times the one before. */
#define NETBENCH_STEP 8
#define NETBENCH_DEFAULT_MIN 8
#define NETBENCH_DEFAULT_MAX (16u << 20)
/* Option ranges: a message fits one MPI count of bytes with room to spare. */
#define NETBENCH_MAX_BYTES (1u << 30)
#define NETBENCH_DEFAULT_REPEATS 20
#define NETBENCH_MAX_REPEATS 1000000
/* min = 1, max = 2^30, step 8 gives 11 sizes; the bound leaves room. */
#define NETBENCH_MAX_SIZES 32

typedef struct {
    size_t min_bytes, max_bytes; /* the ladder: min, min * 8, .. below max, then max */
    int repeats;                 /* timed round trips per size and pair */
    int json;                    /* rank 0 prints one JSON object instead of the table */
} netbench_options;

/* The figures of t(s) = latency + s / bandwidth. */
typedef struct {
    double latency_s;     /* one-way time of the smallest size */
    double bandwidth_Bps; /* bytes per second (see netbench_fit_curve) */
    int slope;            /* 1: bandwidth is the slope; 0: the largest size's bytes / time */
} netbench_fit;

/* The message sizes of opt, ascending and distinct, into bytes[NETBENCH_MAX_SIZES];
 * returns their count. */
int netbench_sizes(const netbench_options *opt, size_t *bytes);

/* Fit one curve of n >= 1 one-way times: latency = t[0]; bandwidth = the slope between the
 * smallest and the largest size, (bytes[n-1] - bytes[0]) / (t[n-1] - t[0]), so the model
 * reproduces both end points. When t[n-1] < 2 t[0] (one size, a short ladder, or a
 * smallest size slowed by a busy machine) that difference is mostly noise and the slope
 * can come out absurd (TB/s), so bandwidth = bytes[n-1] / t[n-1] instead. */
netbench_fit netbench_fit_curve(const size_t *bytes, const double *one_way_s, int n);

/* The median of n values (the mean of the middle two for even n); sorts v in place. */
double netbench_median(double *v, int n);

/* Collective over comm: measure every pair, then rank 0 prints the table or the JSON
 * object on stdout. -1 + err (CCDL_ERR_INPUT, the same on every rank) when comm has fewer
 * than 2 ranks or the buffers cannot fit this node's memory. */
int netbench_run(const netbench_options *opt, MPI_Comm comm, ccdl_error *err);

#endif
