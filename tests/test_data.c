/* test_data.c: the dataset readers on files written here in the official layouts (IDX gzip
 * and plain, CIFAR-10 binary, ccdl's ImageNet-32 and its converter from npz), their
 * one-line errors naming the file, the epoch permutation and split, batch normalisation,
 * padding, augmentation and the Dirichlet split; and the real Fashion-MNIST when the Debian
 * package is installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "data.h"
#include "rng.h"

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

static void test_fashion_mnist(void) {
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
    expect_load_error("has no train-images-idx3-ubyte.gz");
    /* a FIFO in place of a data file is refused, not read (which would block forever) */
    CHECK(mkfifo(path, 0600) == 0);
    expect_load_error("train-images-idx3-ubyte.gz: is a FIFO, not a file");
    unlink(path);
    /* data.path itself: missing, or a file */
    CHECK(dataset_load("fashion-mnist", path, 1, 0, &ds, &err) != 0);
    CHECK_MSG(strstr(err.text, "data.path: ") && strstr(err.text, "No such file"), "%s", err.text);
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    CHECK(dataset_load("fashion-mnist", path, 1, 0, &ds, &err) != 0);
    CHECK_MSG(strstr(err.text, "not a directory") != NULL, "%s", err.text);
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
}

// ---------------------------------------------------------------------------- CIFAR-10

/* A record's pixel in a pattern the reader cannot produce by accident: file k, record i,
 * byte j. */
static uint8_t cifar_byte(int k, int i, int j) {
    return (uint8_t)(k * 31 + i * 7 + j * 13);
}

/* Write name with `records` records; truncate_by drops bytes at the end; bad_label puts
 * label 10 in the last record. */
static void write_cifar(const char *name, int k, int records, size_t truncate_by, int bad_label) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t size = (size_t)records * 3073;
    uint8_t *buf = malloc(size);
    for (int i = 0; i < records; i++) {
        buf[(size_t)i * 3073] = (uint8_t)((i + k) % 10);
        for (int j = 0; j < 3072; j++) buf[(size_t)i * 3073 + 1 + j] = cifar_byte(k, i, j);
    }
    if (bad_label) buf[(size_t)(records - 1) * 3073] = 10;
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, size - truncate_by, f);
    fclose(f);
    free(buf);
}

static void write_cifar_set(int records) {
    for (int k = 1; k <= 5; k++) {
        char name[64];
        snprintf(name, sizeof name, "data_batch_%d.bin", k);
        write_cifar(name, k, records, 0, 0);
    }
    write_cifar("test_batch.bin", 0, 7, 0, 0);
}

static void expect_error(const char *name, int train, const char *needle) {
    dataset ds;
    ccdl_error err = {0};
    CHECK(dataset_load(name, dir, train, 0, &ds, &err) != 0);
    CHECK_MSG(strstr(err.text, needle) != NULL, "'%s' lacks '%s'", err.text, needle);
    CHECK(err.kind == CCDL_ERR_INPUT);
    CHECK(strchr(err.text, '\n') == NULL);
}

static void test_cifar10(void) {
    ccdl_error err;
    dataset ds;
    write_cifar_set(12);
    CHECK(dataset_load("cifar10", dir, 1, 0, &ds, &err) == 0);
    CHECK(ds.count == 60 && ds.channels == 3 && ds.height == 32 && ds.width == 32);
    CHECK(ds.classes == 10);
    /* sample 12 * 2 + 5 is file 3, record 5: label (5 + 3) % 10, planes R, G, B in order */
    const int64_t s = 12 * 2 + 5;
    CHECK(ds.labels[s] == 8);
    int same = 1;
    for (int j = 0; j < 3072; j++) same &= ds.pixels[s * 3072 + j] == cifar_byte(3, 5, j);
    CHECK(same);
    /* batch: channel c normalised with its own constants; G plane starts at 1024 */
    int32_t idx[1] = {(int32_t)s}, y[1];
    float x[3072];
    dataset_fill_batch(&ds, idx, 1, x, y);
    CHECK(y[0] == 8);
    for (int c = 0; c < 3; c++) {
        float want = ((float)cifar_byte(3, 5, c * 1024 + 77) / 255.0f - ds.mean[c]) / ds.std[c];
        CHECK_CLOSE(x[c * 1024 + 77], want, 1e-5, 1e-5);
    }
    CHECK_CLOSE(ds.mean[1], 0.4822, 1e-6, 0);
    dataset_free(&ds);
    CHECK(dataset_load("cifar10", dir, 0, 0, &ds, &err) == 0);
    CHECK(ds.count == 7 && ds.labels[3] == 3);
    dataset_free(&ds);
    CHECK(dataset_load("cifar10", dir, 1, 20, &ds, &err) == 0 && ds.count == 20);
    dataset_free(&ds);

    /* errors name the file */
    write_cifar("data_batch_4.bin", 4, 12, 100, 0);
    expect_error("cifar10", 1, "data_batch_4.bin: truncated or wrong size: 36776 bytes");
    write_cifar("data_batch_4.bin", 4, 11, 0, 0); /* cut at a record boundary */
    expect_error("cifar10", 1, "data_batch_4.bin: truncated or wrong size: 11 records");
    write_cifar("data_batch_4.bin", 4, 12, 0, 1);
    expect_error("cifar10", 1, "data_batch_4.bin: record 11 has label 10");
    write_cifar("data_batch_4.bin", 4, 12, 0, 0);
    write_cifar("test_batch.bin", 0, 7, 3073 * 7, 0); /* empty */
    expect_error("cifar10", 0, "test_batch.bin: truncated or wrong size: 0 bytes");
    char path[256];
    snprintf(path, sizeof path, "%s/data_batch_2.bin", dir);
    unlink(path);
    expect_error("cifar10", 1, "has no data_batch_2.bin");
    expect_error("cifar-99", 1, "known: fashion-mnist, cifar10, imagenet32");
}

// ---------------------------------------------------------------------------- ImageNet-32

static void put_le32(unsigned char *b, uint32_t v) {
    b[0] = (unsigned char)v, b[1] = (unsigned char)(v >> 8), b[2] = (unsigned char)(v >> 16);
    b[3] = (unsigned char)(v >> 24);
}

/* A file in ccdl's layout (docs/data.md), written here byte by byte. */
static void write_in32(const char *name, uint32_t part, uint32_t parts, uint32_t records,
                       uint32_t header_records, size_t truncate_by, const char *magic) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unsigned char head[32] = {0};
    memcpy(head, magic, 8);
    put_le32(head + 8, 1);
    put_le32(head + 12, part);
    put_le32(head + 16, parts);
    put_le32(head + 20, header_records);
    put_le32(head + 24, 1000);
    size_t size = 32 + (size_t)records * 3074;
    unsigned char *buf = malloc(size);
    memcpy(buf, head, 32);
    for (uint32_t i = 0; i < records; i++) {
        unsigned char *r = buf + 32 + (size_t)i * 3074;
        uint32_t label = (part * 100 + i * 37) % 1000;
        r[0] = (unsigned char)label, r[1] = (unsigned char)(label >> 8);
        for (int j = 0; j < 3072; j++) r[2 + j] = (unsigned char)(part + i * 3 + j * 5);
    }
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, size - truncate_by, f);
    fclose(f);
    free(buf);
}

static void test_imagenet32(void) {
    ccdl_error err;
    dataset ds;
    write_in32("train_1.bin", 1, 3, 4, 4, 0, IMAGENET32_MAGIC);
    write_in32("train_2.bin", 2, 3, 5, 5, 0, IMAGENET32_MAGIC);
    write_in32("train_3.bin", 3, 3, 2, 2, 0, IMAGENET32_MAGIC);
    write_in32("val.bin", 1, 1, 6, 6, 0, IMAGENET32_MAGIC);
    CHECK_MSG(dataset_load("imagenet32", dir, 1, 0, &ds, &err) == 0, "%s", err.text);
    CHECK(ds.count == 11 && ds.classes == 1000 && ds.channels == 3 && ds.height == 32);
    /* sample 4 + 3 is part 2, record 3: label (200 + 111) % 1000 = 311 (two bytes) */
    CHECK(ds.labels[7] == 311 && ds.labels[0] == 100);
    CHECK(ds.pixels[7 * 3072 + 2000] == (uint8_t)(2 + 3 * 3 + 2000 * 5));
    dataset_free(&ds);
    CHECK(dataset_load("imagenet32", dir, 0, 0, &ds, &err) == 0 && ds.count == 6);
    dataset_free(&ds);

    write_in32("train_2.bin", 2, 3, 5, 5, 10, IMAGENET32_MAGIC);
    expect_error("imagenet32", 1, "train_2.bin: truncated or wrong size");
    write_in32("train_2.bin", 2, 3, 4, 5, 0, IMAGENET32_MAGIC); /* header promises more */
    expect_error("imagenet32", 1, "train_2.bin: truncated or wrong size");
    write_in32("train_2.bin", 3, 3, 5, 5, 0, IMAGENET32_MAGIC);
    expect_error("imagenet32", 1, "train_2.bin: header says part 3 of 3");
    write_in32("train_2.bin", 2, 3, 5, 5, 0, "NOTMAGIC");
    expect_error("imagenet32", 1, "train_2.bin: not a ccdl ImageNet-32 file");
    write_in32("train_2.bin", 2, 3, 5, 5, 0, IMAGENET32_MAGIC);
    write_in32("val.bin", 1, 1, 6, 6, 3074 * 6 + 10, IMAGENET32_MAGIC);
    expect_error("imagenet32", 0, "val.bin: truncated: no 32-byte header");
    char path[256];
    snprintf(path, sizeof path, "%s/train_3.bin", dir);
    unlink(path);
    expect_error("imagenet32", 1, "has no train_3.bin");
}

/* The converter (tools/imagenet32_convert.py) on npz files in the official layout, read
 * back by the loader. Skipped without Python + numpy. */
static void test_imagenet32_converter(void) {
    const char *py = getenv("PYTHON"), *src = getenv("top_srcdir");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s -c 'import numpy' 2> /dev/null", py ? py : "/usr/bin/python3");
    if (!src || system(cmd) != 0) {
        fprintf(stderr, "note: no top_srcdir or no Python with numpy; converter test skipped\n");
        return;
    }
    /* npz with data (N, 3072) uint8 R, G, B planes and labels 1..1000; two train batches in
     * the official subdirectory, val at the top */
    snprintf(
        cmd, sizeof cmd,
        "cd %s && mkdir -p npz/Imagenet32_train_npz out && %s -c '"
        "import numpy as np\n"
        "for k, n in ((1, 5), (2, 3)):\n"
        "    d = ((np.arange(n * 3072).reshape(n, 3072) * (k + 2)) %% 251).astype(np.uint8)\n"
        "    np.savez(f\"npz/Imagenet32_train_npz/train_data_batch_{k}.npz\", data=d,"
        " labels=[1000 - i * k for i in range(n)], mean=np.zeros(3072))\n"
        "np.savez(\"npz/val_data.npz\", data=np.full((4, 3072), 9, np.uint8),"
        " labels=[1, 2, 3, 1000])\n' && %s %s/tools/imagenet32_convert.py npz out > convert.log",
        dir, py ? py : "/usr/bin/python3", py ? py : "/usr/bin/python3", src);
    CHECK_MSG(system(cmd) == 0, "converter failed: %s", cmd);
    char out[300];
    snprintf(out, sizeof out, "%s/out", dir);
    dataset ds;
    ccdl_error err = {0};
    CHECK_MSG(dataset_load("imagenet32", out, 1, 0, &ds, &err) == 0, "%s", err.text);
    if (ds.count == 8) {
        /* batch 2, record 1: label 1000 - 1 * 2 -> 997 (0-based), pixel j = ((3072 + j) * 4) % 251
         */
        CHECK(ds.labels[0] == 999 && ds.labels[1] == 998 && ds.labels[6] == 997);
        CHECK(ds.pixels[6 * 3072 + 10] == (uint8_t)(((3072 + 10) * 4) % 251));
        CHECK(ds.pixels[2 * 3072 + 3071] == (uint8_t)(((2 * 3072 + 3071) * 3) % 251));
    } else {
        CHECK_MSG(0, "converted train set has %lld samples, expected 8", (long long)ds.count);
    }
    dataset_free(&ds);
    CHECK(dataset_load("imagenet32", out, 0, 0, &ds, &err) == 0);
    CHECK(ds.count == 4 && ds.labels[0] == 0 && ds.labels[3] == 999 && ds.pixels[100] == 9);
    dataset_free(&ds);
}

// ---------------------------------------------------------------------------- padding

static dataset fake_dataset(int64_t count, int channels, int h, int w, int classes) {
    dataset ds = {
        .count = count, .channels = channels, .height = h, .width = w, .classes = classes};
    ds.pixels = malloc((size_t)count * channels * h * w);
    ds.labels = malloc(sizeof(int32_t) * (size_t)count);
    for (size_t i = 0; i < (size_t)count * channels * h * w; i++)
        ds.pixels[i] = (uint8_t)(1 + i % 250); /* never 0: padding is recognisable */
    for (int64_t i = 0; i < count; i++) ds.labels[i] = (int32_t)(i % classes);
    for (int c = 0; c < 3; c++) ds.mean[c] = 0.25f + 0.1f * c, ds.std[c] = 0.5f - 0.1f * c;
    return ds;
}

static void test_pad(void) {
    dataset ds = fake_dataset(3, 1, 28, 28, 10);
    uint8_t keep[3 * 784];
    memcpy(keep, ds.pixels, sizeof keep);
    ccdl_error err = {0};
    CHECK(dataset_pad_to(&ds, 32, &err) == 0);
    CHECK(ds.height == 32 && ds.width == 32 && ds.count == 3);
    int ok = 1;
    for (int i = 0; i < 3; i++)
        for (int r = 0; r < 32; r++)
            for (int c = 0; c < 32; c++) {
                uint8_t v = ds.pixels[(size_t)i * 1024 + r * 32 + c];
                int inside = r >= 2 && r < 30 && c >= 2 && c < 30;
                ok &= inside ? v == keep[i * 784 + (r - 2) * 28 + (c - 2)] : v == 0;
            }
    CHECK(ok);
    CHECK(dataset_pad_to(&ds, 32, &err) == 0); /* already 32: no-op */
    CHECK(dataset_pad_to(&ds, 30, &err) != 0 && err.kind == CCDL_ERR_INPUT);
    CHECK(strstr(err.text, "cannot pad 32x32 images to 30x30") != NULL);
    dataset_free(&ds);
    /* odd difference: the extra row and column go below and right */
    ds = fake_dataset(1, 3, 5, 5, 2);
    CHECK(dataset_pad_to(&ds, 8, &err) == 0);
    CHECK(ds.pixels[64 * 2 + 8 * 1 + 1] != 0 && ds.pixels[64 * 2 + 0] == 0 &&
          ds.pixels[64 * 2 + 8 * 5 + 5] != 0 && ds.pixels[64 * 2 + 8 * 6 + 6] == 0);
    dataset_free(&ds);
}

// ---------------------------------------------------------------------------- augmentation

/* The augmented batch against a naive crop of the zero-padded image, replaying the
 * documented draws (row offset, column offset, flip) from an identically seeded rng. */
static void test_augment(void) {
    enum { B = 64, C = 3, H = 8, W = 8 };
    dataset ds = fake_dataset(100, C, H, W, 10);
    int32_t idx[B], y[B], y0[B];
    for (int i = 0; i < B; i++) idx[i] = (i * 37) % 100;
    static float x[B * C * H * W], x0[B * C * H * W], x2[B * C * H * W];
    const augment_config aug = {4, 1}, none = {0, 0};
    rng_t r1, r2;
    rng_seed(&r1, 9, RNG_AUGMENT, 3, 5);
    dataset_fill_batch_augmented(&ds, idx, B, &aug, &r1, x, y);
    rng_seed(&r2, 9, RNG_AUGMENT, 3, 5);
    int ok = 1, flips = 0, shifted = 0;
    for (int s = 0; s < B; s++) {
        int dy = (int)rng_below(&r2, 9), dx = (int)rng_below(&r2, 9), flip = (int)rng_below(&r2, 2);
        flips += flip, shifted += dy != 4 || dx != 4;
        ok &= y[s] == ds.labels[idx[s]];
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    int jj = flip ? W - 1 - j : j, si = i + dy - 4, sj = jj + dx - 4;
                    double raw = si < 0 || si >= H || sj < 0 || sj >= W
                                     ? 0
                                     : ds.pixels[(((size_t)idx[s] * C + c) * H + si) * W + sj];
                    double want = (raw / 255.0 - ds.mean[c]) / ds.std[c];
                    ok &= fabs(x[((s * C + c) * H + i) * W + j] - want) < 1e-5;
                }
    }
    CHECK(ok);
    CHECK(flips > 16 && flips < 48 && shifted > 48); /* the draws are really used */
    /* both rngs consumed exactly the documented draws */
    CHECK(rng_next(&r1) == rng_next(&r2));
    /* same seed, same batch; another seed, another batch */
    rng_seed(&r1, 9, RNG_AUGMENT, 3, 5);
    dataset_fill_batch_augmented(&ds, idx, B, &aug, &r1, x2, y);
    CHECK(memcmp(x, x2, sizeof x) == 0);
    rng_seed(&r1, 9, RNG_AUGMENT, 3, 6);
    dataset_fill_batch_augmented(&ds, idx, B, &aug, &r1, x2, y);
    CHECK(memcmp(x, x2, sizeof x) != 0);
    /* no augmentation: exactly dataset_fill_batch, rng untouched (may be NULL) */
    dataset_fill_batch(&ds, idx, B, x0, y0);
    dataset_fill_batch_augmented(&ds, idx, B, &none, NULL, x2, y);
    CHECK(memcmp(x0, x2, sizeof x0) == 0);
    dataset_fill_batch_augmented(&ds, idx, B, NULL, NULL, x2, y);
    CHECK(memcmp(x0, x2, sizeof x0) == 0);
    /* flip only: a mirror image, no shift */
    const augment_config flip_only = {0, 1};
    rng_seed(&r1, 1, RNG_AUGMENT, 0, 0);
    dataset_fill_batch_augmented(&ds, idx, B, &flip_only, &r1, x2, y);
    rng_seed(&r2, 1, RNG_AUGMENT, 0, 0);
    ok = 1;
    for (int s = 0; s < B; s++) {
        int flip = (int)rng_below(&r2, 2);
        for (int j = 0; j < W; j++) {
            int at = ((s * C + 1) * H + 5) * W;
            ok &= x2[at + j] == x0[at + (flip ? W - 1 - j : j)];
        }
    }
    CHECK(ok);
    dataset_free(&ds);
}

// ---------------------------------------------------------------------------- Dirichlet split

static void test_dirichlet(void) {
    enum { N = 2000, K = 10, n = 8 };
    dataset ds = fake_dataset(N, 1, 1, 1, K);
    data_partition a, b, c;
    ccdl_error err = {0};
    CHECK(data_partition_dirichlet(&ds, n, 0.1, 1, 5, &a, &err) == 0);
    CHECK(data_partition_dirichlet(&ds, n, 0.1, 1, 5, &b, &err) == 0);
    CHECK(data_partition_dirichlet(&ds, n, 0.1, 1, 6, &c, &err) == 0);
    /* every sample exactly once, ascending within a worker; a pure function of the seed */
    static int seen[N];
    int ok = a.offset[0] == 0 && a.offset[n] == N;
    for (int i = 0; i < n; i++)
        for (int64_t j = a.offset[i]; j < a.offset[i + 1]; j++) {
            seen[a.index[j]]++;
            if (j > a.offset[i]) ok &= a.index[j] > a.index[j - 1];
        }
    for (int i = 0; i < N; i++) ok &= seen[i] == 1;
    CHECK(ok);
    CHECK(memcmp(a.index, b.index, sizeof(int32_t) * N) == 0 &&
          memcmp(a.offset, b.offset, sizeof(int64_t) * (n + 1)) == 0);
    CHECK(memcmp(a.index, c.index, sizeof(int32_t) * N) != 0);
    /* alpha 0.1 is skewed: a worker's most common class holds a large share of its samples */
    double skew = 0;
    for (int i = 0; i < n; i++) {
        int hist[K] = {0}, most = 0;
        for (int64_t j = a.offset[i]; j < a.offset[i + 1]; j++) hist[ds.labels[a.index[j]]]++;
        for (int k = 0; k < K; k++) most = hist[k] > most ? hist[k] : most;
        skew += (double)most / (double)(a.offset[i + 1] - a.offset[i]) / n;
    }
    fprintf(stderr, "dirichlet alpha 0.1: mean top-class share %.2f\n", skew);
    CHECK(skew > 0.35); /* an even split gives ~0.13 */
    data_partition_free(&b);
    /* alpha 1000 is nearly even: every worker holds 25 +- 5 of each class's 200 */
    CHECK(data_partition_dirichlet(&ds, n, 1000, 1, 5, &b, &err) == 0);
    ok = 1;
    for (int i = 0; i < n; i++) {
        int hist[K] = {0};
        for (int64_t j = b.offset[i]; j < b.offset[i + 1]; j++) hist[ds.labels[b.index[j]]]++;
        for (int k = 0; k < K; k++) ok &= hist[k] >= 20 && hist[k] <= 30;
    }
    CHECK(ok);
    /* a minimum per worker is honoured, an impossible one is an input error */
    data_partition_free(&b);
    CHECK(data_partition_dirichlet(&ds, n, 0.1, 150, 5, &b, &err) == 0);
    ok = 1;
    for (int i = 0; i < n; i++) ok &= b.offset[i + 1] - b.offset[i] >= 150;
    CHECK(ok);
    data_partition_free(&b);
    CHECK(data_partition_dirichlet(&ds, n, 0.1, 251, 5, &b, &err) != 0);
    CHECK(err.kind == CCDL_ERR_INPUT && strstr(err.text, "1000 attempts") != NULL);
    CHECK(data_partition_dirichlet(&ds, n, 0, 1, 5, &b, &err) != 0);
    CHECK(data_partition_dirichlet(&ds, N + 1, 1, 1, 5, &b, &err) != 0);
    /* tiny alpha: proportions stay finite (each class lands on one worker) */
    CHECK(data_partition_dirichlet(&ds, n, 1e-3, 0, 5, &b, &err) == 0 && b.offset[n] == N);
    data_partition_free(&b);
    /* epoch order: the worker's own samples, reshuffled each epoch */
    const int64_t m = a.offset[3] - a.offset[2];
    int32_t *e0 = malloc(sizeof(int32_t) * (size_t)m), *e1 = malloc(sizeof(int32_t) * (size_t)m);
    data_partition_epoch_order(&a, 2, 5, 0, e0);
    data_partition_epoch_order(&a, 2, 5, 1, e1);
    int64_t moved = 0;
    long long sum0 = 0, sum = 0;
    for (int64_t j = 0; j < m; j++) {
        moved += e0[j] != e1[j];
        sum0 += e0[j];
        sum += a.index[a.offset[2] + j];
    }
    CHECK(sum0 == sum && (m < 4 || moved > m / 2));
    free(e0), free(e1);
    data_partition_free(&a);
    data_partition_free(&c);
    CHECK(a.index == NULL);
    dataset_free(&ds);
}

int main(void) {
    CHECK(mkdtemp(dir) != NULL);
    test_fashion_mnist();
    test_cifar10();
    test_imagenet32();
    test_imagenet32_converter();
    test_pad();
    test_augment();
    test_dirichlet();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return check_exit();
}
