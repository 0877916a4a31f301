/* runlock.h: one writer per trace.
 *
 * While a run writes TRACE, its rank 0 holds an exclusive flock on TRACE.lock (which holds
 * "pid host"). A second `ccdl run` on the same trace refuses to start instead of writing
 * over a live run, and `ccdl-sweep` tells a trace being written (the lock is held) from
 * one whose run died (the lock file is stale or absent). The kernel drops the lock when
 * the process dies, however it dies. flock works on local file systems and on NFS v4 and
 * Lustre mounted with flock support; where it is not supported the lock is skipped. */
#ifndef CCDL_RUNLOCK_H
#define CCDL_RUNLOCK_H

#include "util.h"

/* Take TRACE.lock for trace_path. Returns a descriptor (>= 0; -2 when the file system
 * cannot lock: nothing is held), or -1 + err (CCDL_ERR_INPUT) when another process holds
 * it, naming that process. */
int runlock_acquire(const char *trace_path, ccdl_error *err);

/* Remove TRACE.lock and drop the lock (fd from runlock_acquire; negative: nothing). */
void runlock_release(int fd, const char *trace_path);

#endif
