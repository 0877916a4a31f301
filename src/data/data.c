/* data.c: see data.h. Fashion-MNIST is read from the IDX files as Debian's
 * dataset-fashion-mnist package ships them (gzip-compressed, read through zlib); CIFAR-10 and
 * ImageNet-32 from fixed-size binary records with stdio. */
#include "data.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "rng.h"

/* A data file the loaders need, checked before it is opened: a missing one names the key
 * (data.path) and the directory, a FIFO or directory is refused instead of blocking. */
static int check_data_file(const char *path, ccdl_error *err) {
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        const char *slash = strrchr(path, '/');
        return ccdl_fail(err, CCDL_ERR_INPUT, "data.path: %.*s has no %s",
                         slash ? (int)(slash - path) : 1, slash ? path : ".",
                         slash ? slash + 1 : path);
    }
    return check_input_file(path, err);
}

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
    if (check_data_file(path, err)) return -1;
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
    ds->labels = xmalloc_array(ds->count, sizeof(int32_t));
    for (int64_t i = 0; i < ds->count; i++) {
        if (labels[i] >= 10) {
            const unsigned bad = labels[i]; /* read before the buffer goes */
            free(labels);
            dataset_free(ds);
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: label %lld is %u, expected 0..9", lpath,
                             (long long)i, bad);
        }
        ds->labels[i] = labels[i];
    }
    free(labels);
    /* Fashion-MNIST training-set statistics (the usual constants). */
    ds->mean[0] = 0.2860f;
    ds->std[0] = 0.3530f;
    return 0;
}

/* ---------------------------------------------------------------- binary record files */

/* Size of a regular file in bytes; -1 + err if it cannot be opened. */
static int64_t file_size(FILE *f, const char *path, ccdl_error *err) {
    if (fseeko(f, 0, SEEK_END) != 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot seek: %s", path, strerror(errno));
        return -1;
    }
    int64_t size = (int64_t)ftello(f);
    if (size < 0 || fseeko(f, 0, SEEK_SET) != 0) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot seek: %s", path, strerror(errno));
        return -1;
    }
    return size;
}

static FILE *open_input(const char *path, ccdl_error *err) {
    if (check_data_file(path, err)) return NULL;
    FILE *f = fopen(path, "rb");
    if (!f) ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    return f;
}

/* Read `count` records of label_bytes (little-endian) + pixel_bytes into labels / pixels,
 * in chunks so the label and pixel streams are split without a second copy of the file.
 * Labels must be below `classes`. */
static int read_records(FILE *f, const char *path, int64_t count, int label_bytes,
                        size_t pixel_bytes, int classes, int32_t *labels, uint8_t *pixels,
                        ccdl_error *err) {
    const size_t record = (size_t)label_bytes + pixel_bytes;
    const int64_t chunk = 1024;
    uint8_t *buf = xmalloc_array((size_t)chunk, record);
    int rc = 0;
    for (int64_t done = 0; done < count && rc == 0; done += chunk) {
        const int64_t n = count - done < chunk ? count - done : chunk;
        if (fread(buf, record, (size_t)n, f) != (size_t)n) {
            rc = ccdl_fail(err, CCDL_ERR_INPUT, "%s: read error after %lld records", path,
                           (long long)done);
            break;
        }
        for (int64_t i = 0; i < n; i++) {
            const uint8_t *r = buf + (size_t)i * record;
            int32_t label = label_bytes == 1 ? r[0] : (int32_t)(r[0] | (uint32_t)r[1] << 8);
            if (label >= classes) {
                rc = ccdl_fail(err, CCDL_ERR_INPUT, "%s: record %lld has label %d, expected 0..%d",
                               path, (long long)(done + i), label, classes - 1);
                break;
            }
            labels[done + i] = label;
            memcpy(pixels + (size_t)(done + i) * pixel_bytes, r + label_bytes, pixel_bytes);
        }
    }
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- CIFAR-10 */

#define CIFAR_PIXELS 3072
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
#define CIFAR_TRAIN_FILES 5

/* Every file must be a whole number of records and, for the training split, all five
 * must hold the same number (10000 each in the official release): a file cut at a record
 * boundary is still caught. */
static int load_cifar10(const char *dir, int train, dataset *ds, ccdl_error *err) {
    const int nfiles = train ? CIFAR_TRAIN_FILES : 1;
    char path[CIFAR_TRAIN_FILES][1100];
    int64_t records[CIFAR_TRAIN_FILES], total = 0;
    for (int k = 0; k < nfiles; k++) {
        if (train)
            snprintf(path[k], sizeof path[k], "%s/data_batch_%d.bin", dir, k + 1);
        else
            snprintf(path[k], sizeof path[k], "%s/test_batch.bin", dir);
        FILE *f = open_input(path[k], err);
        if (!f) return -1;
        int64_t size = file_size(f, path[k], err);
        fclose(f);
        if (size < 0) return -1;
        if (size == 0 || size % CIFAR_RECORD != 0)
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "%s: truncated or wrong size: %lld bytes is not a whole number of "
                             "%d-byte records (1 label byte + 3072 pixels)",
                             path[k], (long long)size, CIFAR_RECORD);
        records[k] = size / CIFAR_RECORD;
        if (k > 0 && records[k] != records[0])
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "%s: truncated or wrong size: %lld records, but %s has %lld (the "
                             "training files hold equally many, 10000 each)",
                             path[k], (long long)records[k], path[0], (long long)records[0]);
        total += records[k];
    }
    ds->count = total;
    ds->channels = 3, ds->height = 32, ds->width = 32;
    ds->classes = 10;
    ds->pixels = xmalloc_array((size_t)total, CIFAR_PIXELS);
    ds->labels = xmalloc_array((size_t)total, sizeof(int32_t));
    int64_t at = 0;
    for (int k = 0; k < nfiles; k++) {
        FILE *f = open_input(path[k], err);
        int rc = f ? read_records(f, path[k], records[k], 1, CIFAR_PIXELS, 10, ds->labels + at,
                                  ds->pixels + (size_t)at * CIFAR_PIXELS, err)
                   : -1;
        if (f) fclose(f);
        if (rc) {
            dataset_free(ds);
            return -1;
        }
        at += records[k];
    }
    /* CIFAR-10 training-set per-channel mean and standard deviation */
    const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2470f, 0.2435f, 0.2616f};
    memcpy(ds->mean, mean, sizeof mean);
    memcpy(ds->std, std, sizeof std);
    return 0;
}

/* ---------------------------------------------------------------- ImageNet-32 */

#define IN32_PIXELS 3072
#define IN32_RECORD (2 + IN32_PIXELS)
#define IN32_CLASSES 1000

typedef struct {
    uint32_t version, part, parts, records, classes;
} in32_header;

static uint32_t le32(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Open one file and check its header and size; the file is left at the first record. */
static FILE *in32_open(const char *path, uint32_t want_part, in32_header *h, ccdl_error *err) {
    FILE *f = open_input(path, err);
    if (!f) return NULL;
    unsigned char head[IMAGENET32_HEADER];
    int64_t size = file_size(f, path, err);
    if (size < 0) goto fail;
    if (size < IMAGENET32_HEADER || fread(head, 1, sizeof head, f) != sizeof head) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: truncated: no %d-byte header", path, IMAGENET32_HEADER);
        goto fail;
    }
    if (memcmp(head, IMAGENET32_MAGIC, 8) != 0) {
        ccdl_fail(err, CCDL_ERR_INPUT,
                  "%s: not a ccdl ImageNet-32 file (make it with tools/imagenet32_convert.py)",
                  path);
        goto fail;
    }
    h->version = le32(head + 8), h->part = le32(head + 12), h->parts = le32(head + 16);
    h->records = le32(head + 20), h->classes = le32(head + 24);
    if (h->version != IMAGENET32_VERSION) {
        ccdl_fail(err, CCDL_ERR_INPUT, "%s: format version %u, this ccdl reads version %d", path,
                  h->version, IMAGENET32_VERSION);
        goto fail;
    }
    if (h->part != want_part || h->parts < want_part || h->classes != IN32_CLASSES) {
        ccdl_fail(err, CCDL_ERR_INPUT,
                  "%s: header says part %u of %u with %u classes, expected "
                  "part %u with %d classes",
                  path, h->part, h->parts, h->classes, want_part, IN32_CLASSES);
        goto fail;
    }
    const int64_t want = IMAGENET32_HEADER + (int64_t)h->records * IN32_RECORD;
    if (h->records == 0 || size != want) {
        ccdl_fail(err, CCDL_ERR_INPUT,
                  "%s: truncated or wrong size: %lld bytes, the header's %u records need %lld",
                  path, (long long)size, h->records, (long long)want);
        goto fail;
    }
    return f;
fail:
    fclose(f);
    return NULL;
}

static void in32_path(char *path, size_t size, const char *dir, int train, uint32_t part) {
    if (train)
        snprintf(path, size, "%s/train_%u.bin", dir, part);
    else
        snprintf(path, size, "%s/val.bin", dir);
}

/* train_1.bin's header gives the number of parts; every part is checked before anything
 * is read, so a missing or short file fails fast. */
static int load_imagenet32(const char *dir, int train, dataset *ds, ccdl_error *err) {
    char path[1100];
    in32_header h;
    in32_path(path, sizeof path, dir, train, 1);
    FILE *f = in32_open(path, 1, &h, err);
    if (!f) return -1;
    fclose(f);
    const uint32_t parts = h.parts;
    if (!train && parts != 1)
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: header says %u parts, val.bin is one", path,
                         parts);
    int64_t *records = xmalloc_array(parts, sizeof(int64_t)), total = 0;
    for (uint32_t p = 1; p <= parts; p++) {
        in32_path(path, sizeof path, dir, train, p);
        f = in32_open(path, p, &h, err);
        if (!f) {
            free(records);
            return -1;
        }
        fclose(f);
        if (h.parts != parts) {
            free(records);
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: header says %u parts, train_1.bin %u", path,
                             h.parts, parts);
        }
        records[p - 1] = h.records;
        total += h.records;
    }
    ds->count = total;
    ds->channels = 3, ds->height = 32, ds->width = 32;
    ds->classes = IN32_CLASSES;
    ds->pixels = xmalloc_array((size_t)total, IN32_PIXELS);
    ds->labels = xmalloc_array((size_t)total, sizeof(int32_t));
    int64_t at = 0;
    int rc = 0;
    for (uint32_t p = 1; p <= parts && rc == 0; p++) {
        in32_path(path, sizeof path, dir, train, p);
        f = in32_open(path, p, &h, err);
        rc = f ? read_records(f, path, records[p - 1], 2, IN32_PIXELS, IN32_CLASSES,
                              ds->labels + at, ds->pixels + (size_t)at * IN32_PIXELS, err)
               : -1;
        if (f) fclose(f);
        at += records[p - 1];
    }
    free(records);
    if (rc) {
        dataset_free(ds);
        return -1;
    }
    /* the usual ImageNet constants (torchvision); the converter prints the files' own */
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(ds->mean, mean, sizeof mean);
    memcpy(ds->std, std, sizeof std);
    return 0;
}

/* ---------------------------------------------------------------- public */

int dataset_load(const char *name, const char *dir, int train, int64_t subset, dataset *ds,
                 ccdl_error *err) {
    memset(ds, 0, sizeof *ds);
    struct stat st;
    if (stat(dir, &st) != 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "data.path: %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ccdl_fail(err, CCDL_ERR_INPUT, "data.path: %s: not a directory", dir);
    int rc;
    if (strcmp(name, "fashion-mnist") == 0)
        rc = load_fashion_mnist(dir, train, ds, err);
    else if (strcmp(name, "cifar10") == 0)
        rc = load_cifar10(dir, train, ds, err);
    else if (strcmp(name, "imagenet32") == 0)
        rc = load_imagenet32(dir, train, ds, err);
    else
        rc = ccdl_fail(err, CCDL_ERR_INPUT,
                       "data.dataset: unknown dataset \"%s\" (known: fashion-mnist, cifar10, "
                       "imagenet32)",
                       name);
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

/* ---------------------------------------------------------------- padding, augmentation */

int dataset_pad_to(dataset *ds, int size, ccdl_error *err) {
    if (ds->height > size || ds->width > size)
        return ccdl_fail(err, CCDL_ERR_INPUT, "data: cannot pad %dx%d images to %dx%d", ds->height,
                         ds->width, size, size);
    if (ds->height == size && ds->width == size) return 0;
    const int top = (size - ds->height) / 2, left = (size - ds->width) / 2;
    const size_t in_plane = (size_t)ds->height * ds->width, out_plane = (size_t)size * size;
    uint8_t *out = xcalloc((size_t)ds->count * ds->channels, out_plane);
    for (int64_t i = 0; i < ds->count; i++)
        for (int c = 0; c < ds->channels; c++) {
            const uint8_t *src = ds->pixels + ((size_t)i * ds->channels + c) * in_plane;
            uint8_t *dst = out + ((size_t)i * ds->channels + c) * out_plane;
            for (int r = 0; r < ds->height; r++)
                memcpy(dst + (size_t)(top + r) * size + left, src + (size_t)r * ds->width,
                       (size_t)ds->width);
        }
    free(ds->pixels);
    ds->pixels = out;
    ds->height = ds->width = size;
    return 0;
}

/* One sample's draws, in the documented order: crop row offset, column offset, flip. */
static void augment_draw(const augment_config *aug, rng_t *rng, int *dy, int *dx, int *flip) {
    const int p = aug->crop_pad > 0 ? aug->crop_pad : 0;
    *dy = *dx = p;
    *flip = 0;
    if (p > 0) {
        *dy = (int)rng_below(rng, (uint64_t)(2 * p + 1));
        *dx = (int)rng_below(rng, (uint64_t)(2 * p + 1));
    }
    if (aug->flip) *flip = (int)rng_below(rng, 2);
}

void augment_skip(const augment_config *aug, rng_t *rng, int b) {
    if (!aug || (aug->crop_pad <= 0 && !aug->flip)) return;
    int dy, dx, flip;
    for (int s = 0; s < b; s++) augment_draw(aug, rng, &dy, &dx, &flip);
}

void dataset_fill_batch_augmented(const dataset *ds, const int32_t *idx, int b,
                                  const augment_config *aug, rng_t *rng, float *x, int32_t *y) {
    if (!aug || (aug->crop_pad <= 0 && !aug->flip)) {
        dataset_fill_batch(ds, idx, b, x, y);
        return;
    }
    const int h = ds->height, w = ds->width, p = aug->crop_pad > 0 ? aug->crop_pad : 0;
    const size_t plane = (size_t)h * w, sample = plane * ds->channels;
    for (int s = 0; s < b; s++) {
        /* offsets into the padded image: output (r, c) reads input (r + dy - p, c + dx - p) */
        int dy, dx, flip;
        augment_draw(aug, rng, &dy, &dx, &flip);
        const uint8_t *src = ds->pixels + (size_t)idx[s] * sample;
        float *dst = x + (size_t)s * sample;
        for (int c = 0; c < ds->channels; c++) {
            const float scale = 1.0f / (255.0f * ds->std[c]), shift = ds->mean[c] / ds->std[c];
            const float background = -shift; /* a padding pixel: raw value 0 */
            for (int r = 0; r < h; r++) {
                const int sr = r + dy - p;
                float *row = dst + c * plane + (size_t)r * w;
                for (int col = 0; col < w; col++) {
                    const int sc = (flip ? w - 1 - col : col) + dx - p;
                    row[col] = sr < 0 || sr >= h || sc < 0 || sc >= w
                                   ? background
                                   : (float)src[c * plane + (size_t)sr * w + sc] * scale - shift;
                }
            }
        }
        y[s] = ds->labels[idx[s]];
    }
}

/* ---------------------------------------------------------------- Dirichlet partition */

/* Gamma(a, 1) by Marsaglia & Tsang (2000), for a >= 1. */
static double gamma_sample(rng_t *r, double a) {
    const double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double z = rng_normal(r), v = 1.0 + c * z;
        if (v <= 0) continue;
        v = v * v * v;
        double u = rng_uniform(r);
        if (u < 1.0 - 0.0331 * z * z * z * z) return d * v;
        if (log(u) < 0.5 * z * z + d * (1.0 - v + log(v))) return d * v;
    }
}

/* log of a Gamma(a, 1) sample; for a < 1 via Gamma(a + 1) U^(1/a), in logs so that tiny
 * alphas (where the sample itself underflows to 0) still give usable proportions. */
static double log_gamma_sample(rng_t *r, double a) {
    if (a >= 1) return log(gamma_sample(r, a));
    double u = 1.0 - rng_uniform(r); /* (0, 1] */
    return log(gamma_sample(r, a + 1)) + log(u) / a;
}

/* One attempt: owner[i] = worker of sample i. */
static void dirichlet_attempt(const dataset *ds, int n, double alpha, uint64_t seed, int attempt,
                              const int64_t *class_start, const int32_t *by_class, int32_t *scratch,
                              double *logp, int32_t *owner) {
    for (int k = 0; k < ds->classes; k++) {
        rng_t r;
        rng_seed(&r, seed, RNG_PARTITION, (uint64_t)attempt, (uint64_t)k);
        double most = -INFINITY, sum = 0;
        for (int i = 0; i < n; i++) {
            logp[i] = log_gamma_sample(&r, alpha);
            if (logp[i] > most) most = logp[i];
        }
        for (int i = 0; i < n; i++) sum += logp[i] = exp(logp[i] - most);
        const int64_t m = class_start[k + 1] - class_start[k];
        memcpy(scratch, by_class + class_start[k], sizeof(int32_t) * (size_t)m);
        rng_shuffle_int32(&r, scratch, m);
        double cum = 0;
        int64_t lo = 0;
        for (int i = 0; i < n; i++) {
            cum += logp[i] / sum;
            int64_t hi = i == n - 1 ? m : (int64_t)llround(cum * (double)m);
            if (hi > m) hi = m;
            if (hi < lo) hi = lo;
            for (int64_t j = lo; j < hi; j++) owner[scratch[j]] = i;
            lo = hi;
        }
    }
}

int data_partition_dirichlet(const dataset *ds, int n, double alpha, int64_t min_per_worker,
                             uint64_t seed, data_partition *part, ccdl_error *err) {
    memset(part, 0, sizeof *part);
    if (n < 1 || n > ds->count)
        return ccdl_fail(err, CCDL_ERR_INPUT, "data: cannot split %lld samples over %d workers",
                         (long long)ds->count, n);
    if (!(alpha > 0) || !isfinite(alpha))
        return ccdl_fail(err, CCDL_ERR_INPUT, "data: Dirichlet alpha must be positive, got %g",
                         alpha);
    const int K = ds->classes;
    const int64_t N = ds->count;
    /* samples grouped by class, ascending: the canonical input order */
    int64_t *class_start = xcalloc((size_t)K + 1, sizeof *class_start);
    for (int64_t i = 0; i < N; i++) class_start[ds->labels[i] + 1]++;
    for (int k = 0; k < K; k++) class_start[k + 1] += class_start[k];
    int32_t *by_class = xmalloc_array((size_t)N, sizeof(int32_t));
    int64_t *fill = xmalloc_array((size_t)K, sizeof(int64_t));
    memcpy(fill, class_start, sizeof(int64_t) * (size_t)K);
    for (int64_t i = 0; i < N; i++) by_class[fill[ds->labels[i]]++] = (int32_t)i;
    int32_t *scratch = xmalloc_array((size_t)N, sizeof(int32_t)),
            *owner = xmalloc_array((size_t)N, sizeof(int32_t));
    double *logp = xmalloc_array((size_t)n, sizeof(double));
    int64_t *sizes = xcalloc((size_t)n, sizeof *sizes);
    int ok = 0;
    for (int attempt = 0; attempt < 1000 && !ok; attempt++) {
        dirichlet_attempt(ds, n, alpha, seed, attempt, class_start, by_class, scratch, logp, owner);
        memset(sizes, 0, sizeof(int64_t) * (size_t)n);
        for (int64_t i = 0; i < N; i++) sizes[owner[i]]++;
        ok = 1;
        for (int i = 0; i < n; i++) ok &= sizes[i] >= min_per_worker;
    }
    int rc = 0;
    if (!ok) {
        rc = ccdl_fail(err, CCDL_ERR_INPUT,
                       "data: no Dirichlet(%g) split of %lld samples over %d workers gave every "
                       "worker %lld samples in 1000 attempts",
                       alpha, (long long)N, n, (long long)min_per_worker);
    } else {
        part->n = n;
        part->offset = xcalloc((size_t)n + 1, sizeof *part->offset);
        part->index = xmalloc_array((size_t)N, sizeof(int32_t));
        for (int i = 0; i < n; i++) part->offset[i + 1] = part->offset[i] + sizes[i];
        memset(sizes, 0, sizeof(int64_t) * (size_t)n);
        for (int64_t i = 0; i < N; i++) /* ascending i: each worker's list comes out sorted */
            part->index[part->offset[owner[i]] + sizes[owner[i]]++] = (int32_t)i;
    }
    free(class_start), free(by_class), free(fill), free(scratch), free(owner), free(logp);
    free(sizes);
    return rc;
}

void data_partition_free(data_partition *part) {
    free(part->offset);
    free(part->index);
    memset(part, 0, sizeof *part);
}

void data_partition_epoch_order(const data_partition *part, int worker, uint64_t seed, int epoch,
                                int32_t *out) {
    const int64_t lo = part->offset[worker], m = part->offset[worker + 1] - lo;
    memcpy(out, part->index + lo, sizeof(int32_t) * (size_t)m);
    rng_t r;
    rng_seed(&r, seed, RNG_SHUFFLE, (uint64_t)epoch, 1 + (uint64_t)worker);
    rng_shuffle_int32(&r, out, m);
}
