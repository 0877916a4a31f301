/* topology.h: the mixing matrix W^t of a topology, as sparse rows (NOTES.md section 4).
 *
 * A topology is a pure function of (kind, n, round, seed): every rank computes the rows it
 * needs without communication. Rows list columns in ascending order with their weights;
 * W is symmetric and doubly stochastic. No MPI in here. */
#ifndef CCDL_TOPOLOGY_H
#define CCDL_TOPOLOGY_H

#include <stdint.h>

#include "util.h"

typedef enum { TOPO_COMPLETE = 0, TOPO_RING, TOPO_KIND_COUNT } topology_kind;

/* Names as used in specs, indexed by topology_kind, NULL-terminated. */
extern const char *const topology_kind_names[];

typedef struct {
    topology_kind kind;
    int n;
    uint64_t seed;
} topology;

/* Check that the kind supports n workers; -1 + err (CCDL_ERR_INPUT) if not. */
int topology_check(topology_kind kind, int n, ccdl_error *err);

/* Largest number of entries in any row (including the diagonal). */
int topology_max_row(const topology *t);

/* Row i of W at the given gossip round: writes cols[0..k) ascending and weights[0..k);
 * returns k. cols and weights hold at least topology_max_row(t) entries. */
int topology_row(const topology *t, int64_t round, int i, int *cols, double *weights);

#endif
