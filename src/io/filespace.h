/* filespace.h: disk space reserved before a write, so that a full disk or an exhausted
 * quota fails the write before any byte of it lands.
 *
 * HDF5 extends a file wherever it allocates, and a write that fails half way (ENOSPC in
 * the middle of a flush) leaves metadata that points at blocks that never reached the
 * disk: rows that read as zeros. Reserving the blocks first (fallocate, keeping the file
 * size, so HDF5 sees no change) turns that into a clean refusal. File systems without
 * fallocate (some NFS and Lustre versions) are only checked for enough free space.
 * An I/O error in the middle of a write remains possible (EIO, a disk filled by another
 * writer on such a file system); the writers then undo what they can. */
#ifndef CCDL_FILESPACE_H
#define CCDL_FILESPACE_H

#include <stdint.h>

/* Reserve bytes of disk beyond the current end of path. 0: reserved (or, where the file
 * system cannot reserve, that much is free). -1: refused; errno says why (ENOSPC, EDQUOT,
 * EIO...). */
int filespace_reserve(const char *path, uint64_t bytes);

/* Give back whatever is reserved beyond the end of path (best effort). */
void filespace_release(const char *path);

#endif
