/* checkpoint.h: save and restore a run's whole state (docs/checkpoint.md).
 *
 * A checkpoint is one HDF5 file written collectively with parallel HDF5 (MPI-IO):
 *
 *   /                  attrs: format "ccdl-checkpoint", format_version, ccdl_version, spec
 *                      (canonical JSON), spec_crc32, n, ranks (of the writer)
 *   /progress          one attribute per run_progress field (progress.h)
 *   /workers/<buffer>  float32 [n][count] for every WS_CHECKPOINT buffer of the registry,
 *                      row i = worker i, each rank writing its own workers' rows; chunked
 *                      by row with HDF5's Fletcher-32 checksum filter
 *
 * Rows are indexed by worker, not rank, so any rank count can read a checkpoint back. It is
 * written to PATH.tmp, synced and renamed over PATH: a crash while writing leaves the
 * previous checkpoint intact. The file uses HDF5's latest format, whose metadata carries
 * checksums too, so a flipped byte in data or metadata is found on reading. */
#ifndef CCDL_CHECKPOINT_H
#define CCDL_CHECKPOINT_H

#include <mpi.h>

#include "layout.h"
#include "progress.h"
#include "util.h"
#include "worker_state.h"

#define CHECKPOINT_FORMAT "ccdl-checkpoint"
#define CHECKPOINT_FORMAT_VERSION 1

/* Collective. Write every WS_CHECKPOINT buffer of ws and *p under spec_json. -1 + err
 * (CCDL_ERR_RUNTIME) on every rank on failure; the previous file at path is then intact. */
int checkpoint_write(const char *path, const char *spec_json, const worker_state *ws,
                     const layout *l, MPI_Comm comm, const run_progress *p, ccdl_error *err);

/* Collective. Restore ws's WS_CHECKPOINT buffers and *p from path, which must have been
 * written for spec_json (keys under "checkpoint" may differ) and hold exactly the
 * registry's checkpointed buffers. -1 + err (CCDL_ERR_INPUT, one line naming the file and
 * what is wrong: the first differing spec key, a missing buffer, a checksum failure, a
 * truncated file) on every rank. */
int checkpoint_read(const char *path, const char *spec_json, worker_state *ws, const layout *l,
                    MPI_Comm comm, run_progress *p, ccdl_error *err);

/* 1 if path is a ccdl checkpoint (any version), 0 if it is anything else (not HDF5, or
 * HDF5 without the checkpoint's format attribute). Serial; no MPI. */
int checkpoint_is_checkpoint(const char *path);

/* The default checkpoint path for a trace: "run.h5" -> "run.ckpt.h5" (any other name gets
 * ".ckpt.h5" appended). */
void checkpoint_default_path(const char *trace_path, char *out, size_t cap);

#endif
