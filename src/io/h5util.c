/* h5util.c: see h5util.h. */
#include "h5util.h"

#include <stdio.h>
#include <stdlib.h>

/* HDF5's own stack printing would spray multi-line traces on stderr; we report one line. */
void h5_quiet(void) {
    static int done = 0;
    if (done) return;
    /* a failure here only means HDF5 keeps printing; nothing else depends on it */
    if (H5Eset_auto2(H5E_DEFAULT, NULL, NULL) >= 0) done = 1;
}

/* The innermost HDF5 error message (the most specific one), for the end of an error line. */
static herr_t innermost_cb(unsigned n, const H5E_error2_t *e, void *data) {
    if (n == 0 && e->desc) snprintf((char *)data, 256, "%s", e->desc);
    return 0;
}

const char *h5_reason(char buf[256]) {
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb, buf);
    H5Eclear2(H5E_DEFAULT);
    if (!buf[0]) snprintf(buf, 256, "HDF5 error");
    return buf;
}

/* Scalar attribute writers; they return -1 on failure with the HDF5 stack left for
 * h5_reason. `create` = 0 overwrites an existing attribute. */
int h5_attr_write_int(hid_t obj, const char *name, long value, int create) {
    int ok = 0;
    hid_t space = -1, attr = -1;
    if (create) {
        if ((space = H5Screate(H5S_SCALAR)) < 0) return -1;
        attr = H5Acreate2(obj, name, H5T_NATIVE_INT, space, H5P_DEFAULT, H5P_DEFAULT);
    } else {
        attr = H5Aopen(obj, name, H5P_DEFAULT);
    }
    int v = (int)value;
    if (attr >= 0 && H5Awrite(attr, H5T_NATIVE_INT, &v) >= 0) ok = 1;
    if (attr >= 0 && H5Aclose(attr) < 0) ok = 0;
    if (space >= 0 && H5Sclose(space) < 0) ok = 0;
    return ok ? 0 : -1;
}

/* Variable-length UTF-8: h5py returns these as str, and there is no length limit. */
hid_t h5_vlen_string_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

int h5_attr_write_string(hid_t obj, const char *name, const char *value, int create) {
    int ok = 0;
    hid_t space = -1, attr = -1, type = h5_vlen_string_type();
    if (type < 0) return -1;
    if (create) {
        if ((space = H5Screate(H5S_SCALAR)) >= 0)
            attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    } else {
        attr = H5Aopen(obj, name, H5P_DEFAULT);
    }
    const char *v = value ? value : "";
    if (attr >= 0 && H5Awrite(attr, type, &v) >= 0) ok = 1;
    if (attr >= 0 && H5Aclose(attr) < 0) ok = 0;
    if (space >= 0 && H5Sclose(space) < 0) ok = 0;
    if (H5Tclose(type) < 0) ok = 0;
    return ok ? 0 : -1;
}

/* A string attribute of an open object; *out malloc'd. */
int h5_attr_read_string(hid_t file, const char *path, const char *name, char **out,
                        ccdl_error *err) {
    *out = NULL;
    char why[256];
    int rc = -1;
    hid_t attr = -1, ftype = -1, mtype = -1;
    if ((attr = h5_open_attr(file, path, name, err)) < 0) goto done;
    if ((ftype = H5Aget_type(attr)) < 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot inspect attribute %s (%s)", path, name,
                  h5_reason(why));
        goto done;
    }
    if (H5Tget_class(ftype) != H5T_STRING) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: attribute %s is not a string", path, name);
        goto done;
    }
    htri_t is_vlen = H5Tis_variable_str(ftype);
    if (is_vlen < 0 || (mtype = H5Tcopy(ftype)) < 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot inspect attribute %s (%s)", path, name,
                  h5_reason(why));
        goto done;
    }
    if (is_vlen) {
        char *s = NULL;
        if (H5Aread(attr, mtype, &s) < 0) {
            ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot read attribute %s (%s)", path, name,
                      h5_reason(why));
            goto done;
        }
        *out = xstrdup(s ? s : "");
        /* the library allocated s; give it back through the library's allocator */
        hid_t space = H5Aget_space(attr);
        if (space >= 0) {
            H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, &s);
            H5Sclose(space);
        }
    } else {
        /* fixed length: may lack a terminator, so read into one byte more */
        size_t size = H5Tget_size(ftype);
        char *s = xcalloc(size + 1, 1);
        if (size == 0 || H5Aread(attr, mtype, s) < 0) {
            free(s);
            ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot read attribute %s (%s)", path, name,
                      h5_reason(why));
            goto done;
        }
        *out = s;
    }
    rc = 0;
done:
    if (mtype >= 0) H5Tclose(mtype);
    if (ftype >= 0) H5Tclose(ftype);
    if (attr >= 0) H5Aclose(attr);
    H5Eclear2(H5E_DEFAULT);
    return rc;
}

/* Open root attribute `name` or fail with a line naming file and attribute. */
hid_t h5_open_attr(hid_t file, const char *path, const char *name, ccdl_error *err) {
    htri_t exists = H5Aexists(file, name);
    if (exists <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: no attribute %s", path, name);
    }
    char why[256];
    hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
    if (attr < 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot open attribute %s (%s)", path, name,
                         h5_reason(why));
    /* the readers return one value; an array attribute would overrun it */
    hid_t space = H5Aget_space(attr);
    hssize_t points = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (space >= 0) H5Sclose(space);
    if (points != 1) {
        H5Aclose(attr);
        H5Eclear2(H5E_DEFAULT);
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: attribute %s is not a single value", path, name);
    }
    return attr;
}
