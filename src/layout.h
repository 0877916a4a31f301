/* layout.h: which worker lives on which rank.
 *
 * n workers over P ranks in contiguous blocks of n / P: rank r hosts workers
 * [r * n/P, (r + 1) * n/P). P must divide n, so every rank hosts the same number of
 * workers and steps stay in lock-step. */
#ifndef CCDL_LAYOUT_H
#define CCDL_LAYOUT_H

#include "util.h"

typedef struct {
    int n;        /* workers in the experiment */
    int ranks;    /* P */
    int rank;     /* this rank */
    int per_rank; /* n / P */
    int first;    /* first worker hosted here */
} layout;

/* -1 + err (CCDL_ERR_INPUT, naming `workers`) if ranks does not divide n. */
int layout_init(layout *l, int n, int ranks, int rank, ccdl_error *err);
static inline int layout_rank_of(const layout *l, int worker) {
    return worker / l->per_rank;
}
static inline int layout_is_local(const layout *l, int worker) {
    return worker >= l->first && worker < l->first + l->per_rank;
}

#endif
