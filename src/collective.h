/* collective.h: errors agreed across ranks.
 *
 * An error found on one rank must end the run on every rank with the same message, never
 * leave the others waiting in the next collective. Every fallible stage ends in agree(). */
#ifndef CCDL_COLLECTIVE_H
#define CCDL_COLLECTIVE_H

#include <mpi.h>

#include "util.h"

/* Collective: 0 if rc == 0 on every rank; else -1 on every rank, with the lowest failing
 * rank's err (kind and text) copied to all. */
int agree(int rc, ccdl_error *err, MPI_Comm comm);

/* Collective: how many ranks of comm share this rank's node (for memory estimates). */
int ranks_on_node(MPI_Comm comm);

#endif
