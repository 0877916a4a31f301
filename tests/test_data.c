/* test_data.c: the IDX reader on files written here (gzip and plain), its errors, the
 * epoch permutation and split, batch normalisation; and the real Fashion-MNIST when the
 * Debian package is installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "data.h"

static char dir[] = "/tmp/ccdl-test-data-XXXXXX";

static void put_be32(unsigned char *b, uint32_t v) {
    b[0] = v >> 24, b[1] = v >> 16, b[2] = v >> 8, b[3] = (unsigned char)v;
}

/* Write an IDX file of bytes; truncate_by drops bytes from the end. */
static void write_idx(const char *name, int ndims, const uint32_t *dims, const uint8_t *data,
                      size_t truncate_by, int magic_type) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gzFile f = gzopen(path, "wb");
    unsigned char head[16] = {0, 0, (unsigned char)magic_type, (unsigned char)ndims};
    size_t total = 1;
    for (int k = 0; k < ndims; k++) put_be32(head + 4 + 4 * k, dims[k]), total *= dims[k];
    gzwrite(f, head, 4 + 4 * (unsigned)ndims);
    gzwrite(f, data, (unsigned)(total - truncate_by));
    gzclose(f);
}

static void write_set(const char *prefix, uint32_t count, size_t truncate_images, int label_max) {
    uint32_t idims[3] = {count, 28, 28}, ldims[1] = {count};
    uint8_t *px = malloc((size_t)count * 784), *lb = malloc(count);
    for (size_t i = 0; i < (size_t)count * 784; i++) px[i] = (uint8_t)(i * 7 % 256);
    for (uint32_t i = 0; i < count; i++) lb[i] = (uint8_t)(i % (unsigned)(label_max + 1));
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
    write_idx(name, 3, idims, px, truncate_images, 0x08);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
    write_idx(name, 1, ldims, lb, 0, 0x08);
    free(px);
    free(lb);
}

static void expect_load_error(const char *needle) {
    dataset ds;
    ccdl_error err;
    CHECK(dataset_load("fashion-mnist", dir, 1, 0, &ds, &err) != 0);
    CHECK_MSG(strstr(err.text, needle) != NULL, "'%s' lacks '%s'", err.text, needle);
    CHECK(err.kind == CCDL_ERR_INPUT);
}

int main(void) {
    CHECK(mkdtemp(dir) != NULL);
    ccdl_error err;
    dataset ds;

    /* a good small set */
    write_set("train", 50, 0, 9);
    write_set("t10k", 20, 0, 9);
    CHECK(dataset_load("fashion-mnist", dir, 1, 0, &ds, &err) == 0);
    CHECK(ds.count == 50 && ds.channels == 1 && ds.height == 28 && ds.classes == 10);
    CHECK(ds.pixels[784 * 3 + 5] == (uint8_t)((784 * 3 + 5) * 7 % 256));
    CHECK(ds.labels[13] == 3);
    /* batch: (pixel / 255 - mean) / std, a naive loop as the oracle */
    int32_t idx[2] = {7, 2}, y[2];
    float x[2 * 784];
    dataset_fill_batch(&ds, idx, 2, x, y);
    CHECK(y[0] == 7 && y[1] == 2);
    float want = ((float)ds.pixels[2 * 784 + 100] / 255.0f - ds.mean[0]) / ds.std[0];
    CHECK_CLOSE(x[784 + 100], want, 1e-5, 1e-5);
    dataset_free(&ds);
    CHECK(dataset_load("fashion-mnist", dir, 0, 5, &ds, &err) == 0);
    CHECK(ds.count == 5);
    dataset_free(&ds);

    /* errors name the file */
    write_set("train", 50, 100, 9);
    expect_load_error("train-images-idx3-ubyte.gz: truncated");
    write_set("train", 50, 0, 10);
    expect_load_error("train-labels-idx1-ubyte.gz: label");
    uint32_t d3[3] = {5, 28, 28};
    uint8_t junk[5 * 784] = {0};
    write_idx("train-images-idx3-ubyte.gz", 3, d3, junk, 0, 0x0D);
    expect_load_error("not an IDX file");
    char path[256];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    unlink(path);
    expect_load_error("train-images-idx3-ubyte.gz: cannot open");
    CHECK(dataset_load("cifar-99", dir, 1, 0, &ds, &err) != 0);

    /* permutation: a permutation, the same for the same (seed, epoch), new each epoch */
    enum { N = 1000 };
    int32_t p1[N], p2[N], p3[N];
    data_epoch_permutation(5, 0, N, p1);
    data_epoch_permutation(5, 0, N, p2);
    data_epoch_permutation(5, 1, N, p3);
    int seen[N] = {0}, same = 1, diff = 0;
    for (int i = 0; i < N; i++) seen[p1[i]]++, same &= p1[i] == p2[i], diff += p1[i] != p3[i];
    int perm = 1;
    for (int i = 0; i < N; i++) perm &= seen[i] == 1;
    CHECK(perm && same && diff > 900);
    CHECK(data_shard_size(1000, 3) == 333);

    /* the real data, when installed */
    if (access(CCDL_DEFAULT_DATA_DIR "/train-images-idx3-ubyte.gz", R_OK) == 0) {
        CHECK(dataset_load("fashion-mnist", CCDL_DEFAULT_DATA_DIR, 1, 0, &ds, &err) == 0);
        CHECK(ds.count == 60000);
        long hist[10] = {0};
        double mean = 0;
        for (int64_t i = 0; i < ds.count; i++) hist[ds.labels[i]]++;
        for (size_t i = 0; i < (size_t)ds.count * 784; i++) mean += ds.pixels[i];
        for (int k = 0; k < 10; k++) CHECK(hist[k] == 6000);
        /* the normalisation constants are the data's own statistics */
        CHECK_CLOSE(mean / ((double)ds.count * 784 * 255), ds.mean[0], 1e-3, 0);
        dataset_free(&ds);
        CHECK(dataset_load("fashion-mnist", CCDL_DEFAULT_DATA_DIR, 0, 0, &ds, &err) == 0);
        CHECK(ds.count == 10000);
        dataset_free(&ds);
    } else {
        fprintf(stderr, "note: real Fashion-MNIST not installed; skipped that part\n");
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return check_exit();
}
