/* bench_checkpoint.c: checkpoint figures for `make bench` (printed, never asserted).
 *
 * Run under MPI (bench/run.sh uses 2 ranks). Two cases, each with the buffers a ResNet-20
 * run registers (parameters, gradients, batch-norm statistics, SGD momentum; the first
 * three and the momentum are checkpointed), on Fashion-MNIST-shaped input (1 x 32 x 32):
 * - 32 workers: checkpoint size, write and read time (best and median of `reps`);
 * - the 8 workers of examples/resnet20-fmnist-allreduce.json: write time, and the
 *   overhead per epoch at the default interval (one checkpoint per epoch) against an epoch
 *   time estimated from measured training steps: 234 steps of the rank's workers
 *   (60000 / 8 workers / batch 32), one OpenMP thread per rank.
 * Usage: mpiexec -n P bench_checkpoint [dir] [reps]; dir holds the scratch file. */
#include <mpi.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "layout.h"
#include "model.h"
#include "optim.h"
#include "progress.h"
#include "rng.h"
#include "worker_state.h"

enum { BATCH = 32, EXAMPLE_WORKERS = 8, EXAMPLE_STEPS_PER_EPOCH = 234 };

static model *resnet(void) {
    model_config cfg = {.kind = "resnet20",
                        .width = 16,
                        .in_channels = 1,
                        .in_height = 32,
                        .in_width = 32,
                        .classes = 10};
    ccdl_error err = {0};
    model *m = model_create(&cfg, BATCH, &err);
    if (!m) ccdl_die("model_create: %s", err.text);
    return m;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The ranks' slowest time of fn over reps runs: best and median. */
typedef struct {
    double best, median;
} timing;

typedef struct {
    const char *path;
    worker_state *ws;
    layout *lay;
    run_progress *prog;
} ckpt_case;

static double timed(int write, const ckpt_case *c) {
    ccdl_error err = {0};
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    int rc = write ? checkpoint_write(c->path, "{}", c->ws, c->lay, MPI_COMM_WORLD, c->prog, &err)
                   : checkpoint_read(c->path, "{}", c->ws, c->lay, MPI_COMM_WORLD, c->prog, &err);
    if (rc) ccdl_die("checkpoint: %s", err.text);
    double t = MPI_Wtime() - t0, slowest;
    MPI_Allreduce(&t, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return slowest;
}

static timing repeat(int write, const ckpt_case *c, int reps) {
    double t[64];
    if (reps > 64) reps = 64;
    for (int k = 0; k < reps; k++) t[k] = timed(write, c);
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    return (timing){t[0], t[reps / 2]};
}

/* Registry of n workers' ResNet-20 run buffers on this rank, as train.c declares them. */
static void declare(worker_state *ws, const model *m, const layout *lay, model_buffers *mb,
                    optimizer *opt) {
    worker_state_init(ws, lay->per_rank);
    model_declare_buffers(m, ws, 1, mb);
    memset(opt, 0, sizeof *opt);
    opt->sgd = (sgd_config){0.9f, 1, 1e-4f};
    optimizer_declare(opt, ws, model_param_count(m));
}

static double file_mib(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size / 1048576.0 : -1;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    const char *dir = argc > 1 ? argv[1] : ".";
    int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (reps < 1) reps = 1;
    omp_set_num_threads(1);
    char path[1024];
    snprintf(path, sizeof path, "%s/bench_checkpoint.ckpt.h5", dir);
    model *m = resnet();
    run_progress prog;
    progress_init(&prog);
    ccdl_error err = {0};

    /* 32 workers */
    layout lay;
    if (layout_init(&lay, 32, ranks, rank, &err)) ccdl_die("%s", err.text);
    worker_state ws;
    model_buffers mb;
    optimizer opt;
    declare(&ws, m, &lay, &mb, &opt);
    ckpt_case c = {path, &ws, &lay, &prog};
    timing w = repeat(1, &c, reps), r = repeat(0, &c, reps);
    if (rank == 0) {
        size_t floats = 0;
        for (int h = 0; h < ws.n_buffers; h++)
            if (ws.buf[h].roles & WS_CHECKPOINT) floats += ws.buf[h].count;
        double mib = file_mib(path);
        printf("checkpoint, 32 ResNet-20 workers on %d ranks: %.1f MiB (%zu floats per worker: "
               "params, momentum, BN statistics)\n",
               ranks, mib, floats);
        printf("  write: best %.3f s, median %.3f s (%.0f MiB/s); read: best %.3f s, median "
               "%.3f s (aim: under 2 s)\n",
               w.best, w.median, mib / w.median, r.best, r.median);
    }
    worker_state_free(&ws);

    /* the example's 8 workers: write time against an epoch of training */
    if (EXAMPLE_WORKERS % ranks == 0) {
        if (layout_init(&lay, EXAMPLE_WORKERS, ranks, rank, &err)) ccdl_die("%s", err.text);
        declare(&ws, m, &lay, &mb, &opt);
        c.lay = &lay;
        timing w8 = repeat(1, &c, reps);
        size_t in = (size_t)BATCH * 32 * 32;
        float *x = xalloc_floats(in);
        int32_t y[BATCH];
        rng_t g;
        rng_seed(&g, 1, RNG_TEST, (uint64_t)rank, 0);
        for (size_t i = 0; i < in; i++) x[i] = (float)rng_normal(&g);
        for (int i = 0; i < BATCH; i++) y[i] = (int32_t)rng_below(&g, 10);
        float **p = worker_state_buffers(&ws, mb.params),
              **gr = worker_state_buffers(&ws, mb.grads);
        float **st = worker_state_buffers(&ws, mb.state);
        size_t d = model_param_count(m);
        /* one warm-up step per worker (primitive creation), then 3 timed steps */
        double t0 = 0;
        for (int s = 0; s < 4; s++) {
            if (s == 1) {
                MPI_Barrier(MPI_COMM_WORLD);
                t0 = MPI_Wtime();
            }
            for (int wk = 0; wk < lay.per_rank; wk++) {
                model_forward_backward(m, p[wk], st[wk], gr[wk], x, y, BATCH);
                optimizer_step(&opt, 0.01f, s + 1, wk, p[wk], gr[wk], d);
            }
        }
        double step = (MPI_Wtime() - t0) / 3, slowest;
        MPI_Allreduce(&step, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        double epoch = slowest * EXAMPLE_STEPS_PER_EPOCH;
        if (rank == 0)
            printf("examples/resnet20-fmnist-allreduce.json (8 workers, %d ranks, 1 thread each): "
                   "checkpoint %.1f MiB, write median %.3f s; epoch ~%.1f s (%d steps x %.3f s "
                   "measured); default interval (every epoch): overhead %.3f%% of the run "
                   "(aim: under 1%%)\n",
                   ranks, file_mib(path), w8.median, epoch, EXAMPLE_STEPS_PER_EPOCH, slowest,
                   100 * w8.median / epoch);
        free(x);
        worker_state_free(&ws);
    }
    if (rank == 0) unlink(path);
    model_destroy(&m);
    MPI_Finalize();
    return 0;
}
