/* collective.c: see collective.h. */
#include "collective.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The lowest failing rank's err to every rank; first = that rank (INT_MAX: none). */
static int share_error(int first, ccdl_error *err, MPI_Comm comm) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (first == INT_MAX) return 0;
    struct {
        int kind;
        char text[sizeof err->text];
    } msg;
    if (rank == first) {
        msg.kind = err->kind;
        memcpy(msg.text, err->text, sizeof msg.text);
    }
    MPI_Bcast(&msg, (int)sizeof msg, MPI_BYTE, first, comm);
    err->kind = (ccdl_err_kind)msg.kind;
    memcpy(err->text, msg.text, sizeof msg.text);
    return -1;
}

int agree(int rc, ccdl_error *err, MPI_Comm comm) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    int mine = rc ? rank : INT_MAX, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    return share_error(first, err, comm);
}

int agree_io(int rc, ccdl_error *err, MPI_Comm comm, const char *what) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    const char *env = getenv("CCDL_IO_AGREE_SECONDS");
    double limit = env && atof(env) > 0 ? atof(env) : 60.0;
    int mine = rc ? rank : INT_MAX, first, done = 0;
    MPI_Request req;
    MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm, &req);
    double start = MPI_Wtime();
    struct timespec nap = {0, 1000000}; /* 1 ms: a waiting rank need not spin */
    for (;;) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done) break;
        if (MPI_Wtime() - start > limit) {
            fprintf(stderr,
                    "ccdl: %s (rank %d; the other ranks did not answer within %g s, "
                    "aborting the job)\n",
                    rc ? err->text : what, rank, limit);
            fflush(stderr);
            MPI_Abort(comm, 1);
        }
        nanosleep(&nap, NULL);
    }
    return share_error(first, err, comm);
}

int ranks_on_node(MPI_Comm comm) {
    MPI_Comm node;
    int count = 1;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &count);
        MPI_Comm_free(&node);
    }
    return count;
}
