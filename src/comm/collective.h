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

/* agree() after collective I/O (parallel HDF5), which does not promise that an error on one
 * rank reaches the others: a rank that failed may be here while another still waits inside
 * HDF5's own collective. If the ranks have not all arrived within $CCDL_IO_AGREE_SECONDS
 * (default 60), the job is aborted (MPI_Abort) with this rank's error, or `what`: never a
 * hang. */
int agree_io(int rc, ccdl_error *err, MPI_Comm comm, const char *what);

/* Collective: how many ranks of comm share this rank's node (for memory estimates). */
int ranks_on_node(MPI_Comm comm);

#endif
