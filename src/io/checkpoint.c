/* checkpoint.c: see checkpoint.h.
 *
 * Every rank makes the same HDF5 calls in the same order (parallel HDF5 requires it for
 * anything that touches metadata), with the same values: the progress scalars are equal on
 * every rank by construction. Only the rows each rank writes or reads differ. Data moves
 * with collective MPI-IO, which parallel HDF5 requires for filtered (checksummed) datasets;
 * a row is one worker's buffer, so the writes are per_rank collective calls per buffer. */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "collective.h"
#include "config.h"
#include "filespace.h"
#include "h5util.h"

/* Floats per chunk at most: a chunk is at most one worker's row, and HDF5 chunks must stay
 * under 4 GiB. 1 Mi floats = 4 MiB chunks. */
#define CHUNK_FLOATS ((hsize_t)1 << 20)

void checkpoint_default_path(const char *trace_path, char *out, size_t cap) {
    size_t len = strlen(trace_path);
    if (len > 3 && strcmp(trace_path + len - 3, ".h5") == 0)
        snprintf(out, cap, "%.*s.ckpt.h5", (int)(len - 3), trace_path);
    else
        snprintf(out, cap, "%s.ckpt.h5", trace_path);
}

static hid_t mpio_fapl(MPI_Comm comm) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    /* latest format: checksummed superblock and object headers */
    if (H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

static hid_t collective_dxpl(void) {
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (dxpl >= 0 && H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE) < 0) {
        H5Pclose(dxpl);
        return -1;
    }
    return dxpl;
}

static hid_t progress_mem_type(progress_field_type t) {
    return t == PF_I32 ? H5T_NATIVE_INT32 : t == PF_I64 ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
}

static int write_scalar_attr(hid_t obj, const char *name, hid_t type, const void *value) {
    hid_t space = H5Screate(H5S_SCALAR), attr = -1;
    int ok = space >= 0 &&
             (attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Awrite(attr, type, value) >= 0;
    if (attr >= 0 && H5Aclose(attr) < 0) ok = 0;
    if (space >= 0 && H5Sclose(space) < 0) ok = 0;
    return ok ? 0 : -1;
}

static unsigned long spec_crc32(const char *spec_json) {
    return crc32(0L, (const Bytef *)spec_json, (uInt)strlen(spec_json));
}

/* One row of dataset dset <-> buf, collectively. On failure why gets HDF5's reason. */
static int transfer_row(hid_t dset, hid_t dxpl, int write, int64_t row, size_t count, float *buf,
                        char why[256]) {
    hsize_t start[2] = {(hsize_t)row, 0}, n[2] = {1, count}, mn = count;
    hid_t fspace = H5Dget_space(dset), mspace = H5Screate_simple(1, &mn, NULL);
    int ok = fspace >= 0 && mspace >= 0 &&
             H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, n, NULL) >= 0;
    if (ok)
        ok = (write ? H5Dwrite(dset, H5T_NATIVE_FLOAT, mspace, fspace, dxpl, buf)
                    : H5Dread(dset, H5T_NATIVE_FLOAT, mspace, fspace, dxpl, buf)) >= 0;
    if (!ok) h5_reason(why); /* before the closes below clear the error stack */
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------- writing */

/* Rows are collective writes: a row failing on one rank (an I/O error of its own) is agreed
 * on at once, so that no rank goes on to the next collective call alone and hangs there.
 * -1: failed here (the HDF5 reason is on this rank's stack); 1: failed on another rank. */
static int write_buffer(hid_t group, hid_t dxpl, const ws_buffer *b, const layout *l,
                        MPI_Comm comm) {
    char why[256] = "cannot create the dataset";
    hsize_t dims[2] = {(hsize_t)l->n, b->count};
    hsize_t chunk[2] = {1, b->count < CHUNK_FLOATS ? b->count : CHUNK_FLOATS};
    hid_t space = H5Screate_simple(2, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), dset = -1;
    int mine = space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, 2, chunk) >= 0 &&
               H5Pset_fletcher32(dcpl) >= 0 &&
               (dset = H5Dcreate2(group, b->name, H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl,
                                  H5P_DEFAULT)) >= 0;
    ccdl_error e = {CCDL_ERR_RUNTIME, ""};
    snprintf(e.text, sizeof e.text, "/workers/%s: cannot write (%s)", b->name, why);
    int all = agree_io(!mine, &e, comm, "a checkpoint write failed on another rank") == 0;
    for (int w = 0; all && w < l->per_rank; w++) {
        mine = transfer_row(dset, dxpl, 1, l->first + w, b->count, b->w[w], why) == 0;
        snprintf(e.text, sizeof e.text, "/workers/%s row %lld: cannot write (%s)", b->name,
                 (long long)(l->first + w), why);
        all = agree_io(!mine, &e, comm, "a checkpoint write failed on another rank") == 0;
    }
    if (dset >= 0 && H5Dclose(dset) < 0) mine = all = 0;
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    return !mine ? -1 : !all ? 1 : 0;
}

/* 0, -1 (failed here) or 1 (failed on another rank, which reports it). */
static int write_contents(hid_t file, const char *spec_json, const worker_state *ws,
                          const layout *l, const run_progress *p, MPI_Comm comm) {
    long crc = (long)spec_crc32(spec_json);
    if (h5_attr_write_string(file, "format", CHECKPOINT_FORMAT, 1) < 0 ||
        h5_attr_write_int(file, "format_version", CHECKPOINT_FORMAT_VERSION, 1) < 0 ||
        h5_attr_write_string(file, "ccdl_version", PACKAGE_VERSION, 1) < 0 ||
        h5_attr_write_string(file, "spec", spec_json, 1) < 0 ||
        write_scalar_attr(file, "spec_crc32", H5T_NATIVE_LONG, &crc) < 0 ||
        h5_attr_write_int(file, "n", l->n, 1) < 0 ||
        h5_attr_write_int(file, "ranks", l->ranks, 1) < 0)
        return -1;
    hid_t group = H5Gcreate2(file, "progress", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int ok = group >= 0;
    for (const progress_field *f = progress_fields; ok && f->name; f++)
        ok = write_scalar_attr(group, f->name, progress_mem_type(f->type),
                               (const char *)p + f->offset) == 0;
    if (group >= 0 && H5Gclose(group) < 0) ok = 0;
    if (!ok) return -1;
    group = H5Gcreate2(file, "workers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t dxpl = collective_dxpl();
    ok = group >= 0 && dxpl >= 0;
    int rc = ok ? 0 : -1;
    for (int h = 0; rc == 0 && h < ws->n_buffers; h++) {
        const ws_buffer *b = &ws->buf[h];
        if ((b->roles & WS_CHECKPOINT) && b->count) rc = write_buffer(group, dxpl, b, l, comm);
    }
    if (dxpl >= 0) H5Pclose(dxpl);
    if (group >= 0 && H5Gclose(group) < 0) rc = -1;
    return rc;
}

/* An upper bound on the checkpoint's size: every checkpointed row, a checksum and index
 * entry per chunk, the spec twice over, and a margin for the rest of the metadata. */
static uint64_t checkpoint_bytes(const char *spec_json, const worker_state *ws, const layout *l) {
    uint64_t bytes = 2 * strlen(spec_json) + ((uint64_t)1 << 20);
    for (int h = 0; h < ws->n_buffers; h++) {
        const ws_buffer *b = &ws->buf[h];
        if (!(b->roles & WS_CHECKPOINT) || !b->count) continue;
        uint64_t chunks_per_row = (b->count + CHUNK_FLOATS - 1) / CHUNK_FLOATS;
        bytes += (uint64_t)l->n * (b->count * sizeof(float) + chunks_per_row * 64) + 4096;
    }
    return bytes;
}

/* Rank 0: make the new file durable, then put it in place of the old one. */
static int sync_and_rename(const char *tmp, const char *path, ccdl_error *err) {
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: cannot sync the checkpoint: %s", tmp,
                         strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0)
        return ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: cannot rename the checkpoint into place: %s",
                         path, strerror(errno));
    /* the rename itself is durable once the directory is synced */
    char dir[1100];
    path_directory(path, dir, sizeof dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd); /* best effort: some file systems refuse fsync on directories */
        close(dfd);
    }
    return 0;
}

int checkpoint_write(const char *path, const char *spec_json, const worker_state *ws,
                     const layout *l, MPI_Comm comm, const run_progress *p, ccdl_error *err) {
    h5_quiet();
    char tmp[1100], why[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = 0;
    hid_t fapl = mpio_fapl(comm), file = -1;
    if (fapl >= 0) file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (file < 0)
        rc = ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: cannot create the checkpoint (%s)", tmp,
                       h5_reason(why));
    if (fapl >= 0) H5Pclose(fapl);
    if (agree_io(rc, err, comm, "cannot create the checkpoint on another rank")) return -1;
    /* The disk first: a full disk or quota fails here, on rank 0, before any collective
     * write could fail on one rank only; the previous checkpoint stays in place. */
    if (l->rank == 0) {
        uint64_t need = checkpoint_bytes(spec_json, ws, l);
        if (filespace_reserve(tmp, need) != 0)
            rc = ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: no room for the checkpoint (%s: %llu bytes)",
                           tmp, strerror(errno), (unsigned long long)need);
    }
    if (agree(rc, err, comm)) {
        H5Fclose(file);
        if (l->rank == 0) unlink(tmp);
        return -1;
    }
    if (write_contents(file, spec_json, ws, l, p, comm) < 0)
        rc = ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: cannot write the checkpoint (%s)", tmp,
                       h5_reason(why));
    if (H5Fclose(file) < 0 && rc == 0)
        rc = ccdl_fail(err, CCDL_ERR_RUNTIME, "%s: cannot close the checkpoint (%s)", tmp,
                       h5_reason(why));
    if (agree_io(rc, err, comm, "the checkpoint write failed on another rank")) {
        if (l->rank == 0) unlink(tmp);
        return -1;
    }
    if (l->rank == 0) {
        filespace_release(tmp);
        rc = sync_and_rename(tmp, path, err);
    }
    return agree(rc, err, comm);
}

/* ---------------------------------------------------------------- reading */

int checkpoint_is_checkpoint(const char *path) {
    h5_quiet();
    int ours = 0;
    if (H5Fis_hdf5(path) > 0) {
        hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        char *format = NULL;
        ccdl_error ignored;
        if (file >= 0 && h5_attr_read_string(file, path, "format", &format, &ignored) == 0)
            ours = strcmp(format, CHECKPOINT_FORMAT) == 0;
        free(format);
        if (file >= 0) H5Fclose(file);
    }
    H5Eclear2(H5E_DEFAULT);
    return ours;
}

static int read_scalar_attr(hid_t obj, const char *path, const char *name, hid_t type, void *value,
                            ccdl_error *err) {
    hid_t attr = h5_open_attr(obj, path, name, err);
    if (attr < 0) return -1;
    char why[256];
    int rc = 0;
    if (H5Aread(attr, type, value) < 0)
        rc = ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot read attribute %s (%s)", path, name,
                       h5_reason(why));
    H5Aclose(attr);
    return rc;
}

static int check_header(hid_t file, const char *path, const char *spec_json, const layout *l,
                        ccdl_error *err) {
    char *format = NULL, *spec = NULL, key[256];
    long version = 0, n = 0;
    int rc = -1;
    if (h5_attr_read_string(file, path, "format", &format, err)) goto done;
    if (strcmp(format, CHECKPOINT_FORMAT) != 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: not a ccdl checkpoint (format \"%s\")", path, format);
        goto done;
    }
    if (read_scalar_attr(file, path, "format_version", H5T_NATIVE_LONG, &version, err)) goto done;
    if (version != CHECKPOINT_FORMAT_VERSION) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: checkpoint format version %ld; this ccdl reads %d",
                  path, version, CHECKPOINT_FORMAT_VERSION);
        goto done;
    }
    if (h5_attr_read_string(file, path, "spec", &spec, err)) goto done;
    int diff = spec_json_first_difference(spec, spec_json, key, sizeof key);
    if (diff < 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: its spec attribute is not a JSON object", path);
        goto done;
    }
    if (diff > 0) {
        ccdl_fail(err, CCDL_ERR_INPUT,
                  "%s: a checkpoint of another spec (%s differs); not resuming (remove it to "
                  "start over)",
                  path, key);
        goto done;
    }
    if (read_scalar_attr(file, path, "n", H5T_NATIVE_LONG, &n, err)) goto done;
    if (n != l->n) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: holds %ld workers, the spec has %d", path, n, l->n);
        goto done;
    }
    rc = 0;
done:
    free(format);
    free(spec);
    return rc;
}

static int read_buffer(hid_t group, hid_t dxpl, const char *path, ws_buffer *b, const layout *l,
                       ccdl_error *err) {
    char why[256];
    if (H5Lexists(group, b->name, H5P_DEFAULT) <= 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: no /workers/%s: not a checkpoint of this run",
                         path, b->name);
    hid_t dset = H5Dopen2(group, b->name, H5P_DEFAULT), space = -1;
    hsize_t dims[2] = {0, 0};
    int rc = 0;
    if (dset < 0 || (space = H5Dget_space(dset)) < 0 || H5Sget_simple_extent_ndims(space) != 2 ||
        H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
        rc = ccdl_fail(err, CCDL_ERR_INPUT, "%s: /workers/%s is not an [n][count] dataset (%s)",
                       path, b->name, h5_reason(why));
    } else if (dims[0] != (hsize_t)l->n || dims[1] != b->count) {
        rc = ccdl_fail(err, CCDL_ERR_INPUT,
                       "%s: /workers/%s is %llu x %llu, this run needs %d x %zu", path, b->name,
                       (unsigned long long)dims[0], (unsigned long long)dims[1], l->n, b->count);
    }
    /* a checksum failure may hit one rank's rows only: every rank still makes every
     * collective read, and the failure is agreed on afterwards */
    int shape_ok = rc == 0;
    for (int w = 0; shape_ok && w < l->per_rank; w++)
        if (transfer_row(dset, dxpl, 0, l->first + w, b->count, b->w[w], why) < 0 && rc == 0)
            rc = ccdl_fail(err, CCDL_ERR_INPUT,
                           "%s: /workers/%s row %d fails its checksum or cannot be read: corrupt "
                           "checkpoint (%s)",
                           path, b->name, l->first + w, why);
    if (space >= 0) H5Sclose(space);
    if (dset >= 0) H5Dclose(dset);
    return rc;
}

/* Every dataset in /workers must be one the registry checkpoints. */
static int check_no_extra(hid_t group, const char *path, const worker_state *ws, ccdl_error *err) {
    hsize_t count = 0;
    if (H5Gget_num_objs(group, &count) < 0) return 0;
    for (hsize_t i = 0; i < count; i++) {
        char name[WS_NAME_MAX + 8] = "";
        H5Gget_objname_by_idx(group, i, name, sizeof name);
        int h = worker_state_find(ws, name);
        if (h < 0 || !(ws->buf[h].roles & WS_CHECKPOINT))
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "%s: holds /workers/%s, which this run does not have", path, name);
    }
    return 0;
}

static int read_contents(hid_t file, const char *path, const char *spec_json, worker_state *ws,
                         const layout *l, MPI_Comm comm, run_progress *p, ccdl_error *err) {
    if (check_header(file, path, spec_json, l, err)) return -1;
    char why[256];
    hid_t group = H5Gopen2(file, "progress", H5P_DEFAULT);
    if (group < 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: no /progress group (%s)", path, h5_reason(why));
    int rc = 0;
    for (const progress_field *f = progress_fields; rc == 0 && f->name; f++) {
        if (f->later && H5Aexists(group, f->name) == 0) {
            *(double *)((char *)p + f->offset) = NAN; /* an older checkpoint */
            continue;
        }
        rc = read_scalar_attr(group, path, f->name, progress_mem_type(f->type),
                              (char *)p + f->offset, err);
    }
    H5Gclose(group);
    if (rc) return -1;
    if ((group = H5Gopen2(file, "workers", H5P_DEFAULT)) < 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: no /workers group (%s)", path, h5_reason(why));
    hid_t dxpl = collective_dxpl();
    rc = check_no_extra(group, path, ws, err);
    for (int h = 0; rc == 0 && h < ws->n_buffers; h++) {
        ws_buffer *b = &ws->buf[h];
        if ((b->roles & WS_CHECKPOINT) && b->count) rc = read_buffer(group, dxpl, path, b, l, err);
        /* a row failure may be this rank's alone: agree before the next collective read */
        rc = agree(rc, err, comm);
    }
    if (dxpl >= 0) H5Pclose(dxpl);
    H5Gclose(group);
    return rc;
}

int checkpoint_read(const char *path, const char *spec_json, worker_state *ws, const layout *l,
                    MPI_Comm comm, run_progress *p, ccdl_error *err) {
    h5_quiet();
    char why[256];
    int rc = 0;
    /* H5Fis_hdf5 names a file that is not HDF5 at all more clearly than H5Fopen's stack */
    if (l->rank == 0) {
        struct stat st;
        if (stat(path, &st) != 0)
            rc = ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot open the checkpoint: %s", path,
                           strerror(errno));
        else if (!S_ISREG(st.st_mode))
            rc = ccdl_fail(err, CCDL_ERR_INPUT, "%s: the checkpoint is not a regular file", path);
        else if (H5Fis_hdf5(path) <= 0)
            rc = ccdl_fail(err, CCDL_ERR_INPUT,
                           "%s: not an HDF5 file (truncated or corrupt checkpoint)", path);
        H5Eclear2(H5E_DEFAULT);
    }
    if (agree(rc, err, comm)) return -1;
    hid_t fapl = mpio_fapl(comm), file = -1;
    if (fapl >= 0) file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (file < 0) /* before any other HDF5 call: the next one clears the error stack */
        rc = ccdl_fail(err, CCDL_ERR_INPUT,
                       "%s: cannot open the checkpoint: truncated or corrupt (%s)", path,
                       h5_reason(why));
    if (fapl >= 0) H5Pclose(fapl);
    if (agree_io(rc, err, comm, "cannot create the checkpoint on another rank")) return -1;
    rc = read_contents(file, path, spec_json, ws, l, comm, p, err);
    if (H5Fclose(file) < 0 && rc == 0)
        rc = ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot close the checkpoint (%s)", path,
                       h5_reason(why));
    H5Eclear2(H5E_DEFAULT);
    return agree(rc, err, comm);
}
