/* collective.c: see collective.h. */
#include "collective.h"

#include <limits.h>
#include <string.h>

int agree(int rc, ccdl_error *err, MPI_Comm comm) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    int mine = rc ? rank : INT_MAX, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
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

int ranks_on_node(MPI_Comm comm) {
    MPI_Comm node;
    int count = 1;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &count);
        MPI_Comm_free(&node);
    }
    return count;
}
