/* consensus_bench.h: the paper's consensus averaging problem (Appendix E.1).
 *
 * Random vectors on n workers, repeated gossip rounds, Xi per round for each topology; the
 * rounds each needs to bring Xi to given fractions of Xi_0, and the measured per-round
 * contraction of Xi^2 once the slowest mode dominates, beside the (1 - p) the spectrum
 * predicts. Results go to an HDF5 file (layout in docs/consensus-bench.md) and a table. */
#ifndef CCDL_CONSENSUS_BENCH_H
#define CCDL_CONSENSUS_BENCH_H

#include <mpi.h>
#include <stddef.h>

#include "topology.h"
#include "util.h"

#define BENCH_MAX_TARGETS 8
/* Option ranges: n as for topologies, d up to 2^30 floats a worker, rounds up to 10^6. */
#define BENCH_MAX_N 4096
#define BENCH_MAX_D (1ull << 30)
#define BENCH_MAX_ROUNDS 1000000

typedef struct {
    int n;
    size_t d;
    int kinds[TOPO_KIND_COUNT];
    int n_kinds;
    double targets[BENCH_MAX_TARGETS]; /* fractions of Xi_0 */
    int n_targets;
    int max_rounds;
    uint64_t seed;
    const char *out; /* HDF5 file, or NULL */
} consensus_bench_options;

/* Run on all ranks of comm (P must divide n); rank 0 prints the table and writes out.
 * -1 + err on bad options (CCDL_ERR_INPUT: also n x d that cannot fit in this node's
 * memory, found before allocating) or I/O failure. */
int consensus_bench_run(const consensus_bench_options *opt, MPI_Comm comm, ccdl_error *err);

#endif
