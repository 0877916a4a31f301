/* data.c: see data.h. Fashion-MNIST is read from the IDX files as Debian's
 * dataset-fashion-mnist package ships them (gzip-compressed, read through zlib). */
#include "data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "rng.h"

/* ---------------------------------------------------------------- IDX files */

/* Read exactly len bytes; -1 on a short read. */
static int gz_read_all(gzFile f, void *buf, size_t len) {
    unsigned char *p = buf;
    while (len > 0) {
        unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        int got = gzread(f, p, chunk);
        if (got <= 0) return -1;
        p += got;
        len -= (size_t)got;
    }
    return 0;
}

static uint32_t be32(const unsigned char *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Read an IDX file of unsigned bytes with `ndims` dimensions; dims[] gets the sizes and
 * *data the payload (caller frees). Works on gzip and on plain files (zlib reads both). */
static int idx_read(const char *path, int ndims, uint32_t *dims, uint8_t **data, ccdl_error *err) {
    gzFile f = gzopen(path, "rb");
    if (!f) return ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    unsigned char head[4 + 4 * 3];
    int rc = -1;
    size_t total = 1;
    if (gz_read_all(f, head, 4 + 4 * (size_t)ndims) != 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: truncated IDX header", path);
        goto done;
    }
    /* magic: 0x00 0x00 type(0x08 = unsigned byte) ndims */
    if (head[0] != 0 || head[1] != 0 || head[2] != 0x08 || head[3] != ndims) {
        ccdl_fail(
            err, CCDL_ERR_INPUT,
            "%s: not an IDX file of unsigned bytes with %d dimensions (magic %02x%02x%02x%02x)",
            path, ndims, head[0], head[1], head[2], head[3]);
        goto done;
    }
    for (int k = 0; k < ndims; k++) {
        dims[k] = be32(head + 4 + 4 * k);
        total *= dims[k];
    }
    if (total == 0 || total > ((size_t)1 << 34)) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: implausible IDX size", path);
        goto done;
    }
    *data = xmalloc(total);
    if (gz_read_all(f, *data, total) != 0) {
        free(*data);
        *data = NULL;
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: truncated: expected %zu data bytes", path, total);
        goto done;
    }
    rc = 0;
done:
    gzclose(f);
    return rc;
}

static int load_fashion_mnist(const char *dir, int train, dataset *ds, ccdl_error *err) {
    char ipath[1100], lpath[1100];
    const char *prefix = train ? "train" : "t10k";
    snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    uint32_t idims[3], ldims[1];
    uint8_t *pixels = NULL, *labels = NULL;
    if (idx_read(ipath, 3, idims, &pixels, err)) return -1;
    if (idx_read(lpath, 1, ldims, &labels, err)) {
        free(pixels);
        return -1;
    }
    if (idims[0] != ldims[0] || idims[1] != 28 || idims[2] != 28) {
        free(pixels);
        free(labels);
        return ccdl_fail(
            err, CCDL_ERR_INPUT,
            "%s: expected N x 28 x 28 images matching %u labels in %s; got %u x %u x %u", ipath,
            ldims[0], lpath, idims[0], idims[1], idims[2]);
    }
    ds->count = idims[0];
    ds->channels = 1, ds->height = 28, ds->width = 28;
    ds->classes = 10;
    ds->pixels = pixels;
    ds->labels = xmalloc(sizeof(int32_t) * ds->count);
    for (int64_t i = 0; i < ds->count; i++) {
        if (labels[i] >= 10) {
            free(labels);
            dataset_free(ds);
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: label %lld is %u, expected 0..9", lpath,
                             (long long)i, labels[i]);
        }
        ds->labels[i] = labels[i];
    }
    free(labels);
    /* Fashion-MNIST training-set statistics (the usual constants). */
    ds->mean[0] = 0.2860f;
    ds->std[0] = 0.3530f;
    return 0;
}

/* ---------------------------------------------------------------- public */

int dataset_load(const char *name, const char *dir, int train, int64_t subset, dataset *ds,
                 ccdl_error *err) {
    memset(ds, 0, sizeof *ds);
    int rc;
    if (strcmp(name, "fashion-mnist") == 0)
        rc = load_fashion_mnist(dir, train, ds, err);
    else
        rc = ccdl_fail(err, CCDL_ERR_INPUT, "data.dataset: unknown dataset \"%s\"", name);
    if (rc) return rc;
    if (subset > 0 && subset < ds->count) ds->count = subset;
    return 0;
}

void dataset_free(dataset *ds) {
    free(ds->pixels);
    free(ds->labels);
    ds->pixels = NULL;
    ds->labels = NULL;
    ds->count = 0;
}

void data_epoch_permutation(uint64_t seed, int epoch, int64_t count, int32_t *perm) {
    rng_t r;
    rng_seed(&r, seed, RNG_SHUFFLE, (uint64_t)epoch, 0);
    for (int64_t i = 0; i < count; i++) perm[i] = (int32_t)i;
    rng_shuffle_int32(&r, perm, count);
}

void dataset_fill_batch(const dataset *ds, const int32_t *idx, int b, float *x, int32_t *y) {
    const size_t plane = (size_t)ds->height * ds->width;
    const size_t sample = plane * ds->channels;
    for (int s = 0; s < b; s++) {
        const uint8_t *src = ds->pixels + (size_t)idx[s] * sample;
        float *dst = x + (size_t)s * sample;
        for (int c = 0; c < ds->channels; c++) {
            const float scale = 1.0f / (255.0f * ds->std[c]), shift = ds->mean[c] / ds->std[c];
            for (size_t p = 0; p < plane; p++)
                dst[c * plane + p] = (float)src[c * plane + p] * scale - shift;
        }
        y[s] = ds->labels[idx[s]];
    }
}
