/* h5util.h: small HDF5 helpers shared by the trace and the checkpoint: one-line error
 * reasons instead of HDF5's error stack, and scalar attribute readers and writers.
 * Writers return -1 with the HDF5 stack left for h5_reason; readers fail with a ccdl_error
 * (CCDL_ERR_INPUT) naming the file and the attribute. */
#ifndef CCDL_H5UTIL_H
#define CCDL_H5UTIL_H

#include <hdf5.h>

#include "util.h"

/* Turn off HDF5's printing of error stacks (once per process). */
void h5_quiet(void);
/* The innermost (most specific) message of the HDF5 error stack, which is then cleared. */
const char *h5_reason(char buf[256]);

/* Scalar attribute writers; create = 0 overwrites an existing attribute. */
int h5_attr_write_int(hid_t obj, const char *name, long value, int create);
int h5_attr_write_string(hid_t obj, const char *name, const char *value, int create);
/* Variable-length UTF-8 string type (h5py reads it as str); caller closes. */
hid_t h5_vlen_string_type(void);

/* Open attribute name of obj, which must be a single value; path names the file in errors. */
hid_t h5_open_attr(hid_t obj, const char *path, const char *name, ccdl_error *err);
/* A string attribute (fixed or variable length); *out malloc'd. */
int h5_attr_read_string(hid_t obj, const char *path, const char *name, char **out, ccdl_error *err);

#endif
