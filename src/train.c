/* train.c: the step loop (ARCHITECTURE.md "The step loop").
 *
 * Each rank hosts per_rank workers and trains them one after another through one model
 * object (shared activations, separate flat parameter/gradient/momentum buffers). After the
 * local steps the communication policy mixes the parameters, the consensus distance is
 * measured, and rank 0 appends the step's row to the trace. No policy logic lives here
 * beyond choosing the call for the spec's communication mode. */
#include "train.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "consensus.h"
#include "data.h"
#include "gossip.h"
#include "layout.h"
#include "model.h"
#include "optim.h"
#include "reduce.h"
#include "schedule.h"
#include "trace.h"

#define EVAL_BATCH 500

/* ---------------------------------------------------------------- errors across ranks */

/* Collective: agree whether any rank failed; the lowest failing rank's message is sent to
 * all, so every rank returns the same error and rank 0 can print it. */
static int agree(int rc, ccdl_error *err, MPI_Comm comm) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    int mine = rc ? rank : INT_MAX, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == INT_MAX) return 0;
    struct {
        int kind;
        char text[sizeof err->text];
    } msg;
    if (rank == first) {
        msg.kind = err->kind;
        memcpy(msg.text, err->text, sizeof msg.text);
    }
    MPI_Bcast(&msg, (int)sizeof msg, MPI_BYTE, first, comm);
    err->kind = (ccdl_err_kind)msg.kind;
    memcpy(err->text, msg.text, sizeof msg.text);
    return -1;
}

/* ---------------------------------------------------------------- run state */

typedef struct {
    const ccdl_spec *spec;
    layout lay;
    MPI_Comm comm;
    dataset train, test;
    model *net;
    size_t d;
    float **params;   /* [per_rank][d] */
    float **grads;    /* [per_rank][d] */
    float **momentum; /* [per_rank][d] */
    float *batch_x;   /* (max batch, C, H, W) */
    int32_t *batch_y;
    int32_t *perm;
    schedule sched;
    int64_t shard;
    consensus cons;
    gossip *gsp;
    trace *tr;
} run_state;

static int setup_data(run_state *r, ccdl_error *err) {
    const ccdl_spec *s = r->spec;
    if (dataset_load(s->data.dataset, s->data.path, 1, s->data.train_subset, &r->train, err))
        return -1;
    if (dataset_load(s->data.dataset, s->data.path, 0, s->data.test_subset, &r->test, err))
        return -1;
    r->shard = data_shard_size(r->train.count, s->workers);
    if (r->shard < s->schedule.local_batch)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "schedule.local_batch: %d exceeds the %lld samples each of %d workers "
                         "gets from %lld training samples",
                         s->schedule.local_batch, (long long)r->shard, s->workers,
                         (long long)r->train.count);
    if (r->test.count < s->workers)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "data.test_subset: need at least one test sample per worker (%d)",
                         s->workers);
    return 0;
}

/* The trace's directory must exist and be writable: found before hours of training. */
static int check_output_path(const char *path, ccdl_error *err) {
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (access(dir, W_OK | X_OK) != 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot write the trace there: %s", path,
                         strerror(errno));
    return 0;
}

/* Everything that can fail because of the input, checked on every rank and agreed on. */
static int setup_checked(run_state *r, const char *trace_path, ccdl_error *err) {
    const ccdl_spec *s = r->spec;
    int ranks, rank;
    MPI_Comm_size(r->comm, &ranks);
    MPI_Comm_rank(r->comm, &rank);
    if (layout_init(&r->lay, s->workers, ranks, rank, err)) return -1;
    if (check_output_path(trace_path, err)) return -1;
    if (setup_data(r, err)) return -1;
    model_config mc = s->model;
    mc.in_channels = r->train.channels;
    mc.in_height = r->train.height;
    mc.in_width = r->train.width;
    mc.classes = r->train.classes;
    int max_batch = s->schedule.local_batch > EVAL_BATCH ? s->schedule.local_batch : EVAL_BATCH;
    r->net = model_create(&mc, max_batch, err);
    return r->net ? 0 : -1;
}

static void setup_buffers(run_state *r) {
    const int per = r->lay.per_rank;
    r->d = model_param_count(r->net);
    r->params = xcalloc((size_t)per, sizeof(float *));
    r->grads = xcalloc((size_t)per, sizeof(float *));
    r->momentum = xcalloc((size_t)per, sizeof(float *));
    for (int w = 0; w < per; w++) {
        r->params[w] = xalloc_floats(r->d);
        r->grads[w] = xalloc_floats(r->d);
        r->momentum[w] = xalloc_floats(r->d);
        /* all workers start from the same model */
        model_init_params(r->net, r->params[w], (uint64_t)r->spec->seed);
    }
    int max_batch =
        r->spec->schedule.local_batch > EVAL_BATCH ? r->spec->schedule.local_batch : EVAL_BATCH;
    size_t sample = (size_t)r->train.channels * r->train.height * r->train.width;
    r->batch_x = xalloc_floats(sample * (size_t)max_batch);
    r->batch_y = xmalloc(sizeof(int32_t) * (size_t)max_batch);
    r->perm = xmalloc(sizeof(int32_t) * (size_t)r->train.count);
    schedule_init(&r->sched, r->spec, r->shard / r->spec->schedule.local_batch);
    consensus_init(&r->cons, &r->lay, r->comm, r->d);
    if (r->spec->communication.mode == COMM_GOSSIP) {
        topology t = {(topology_kind)r->spec->topology.kind, r->spec->workers,
                      (uint64_t)r->spec->seed};
        r->gsp = gossip_create(&r->lay, &t, r->d, r->comm);
    }
}

static void teardown(run_state *r) {
    /* gossip owns the buffers it swapped out; free ours first, then its */
    for (int w = 0; r->params && w < r->lay.per_rank; w++) {
        free(r->params[w]);
        free(r->grads[w]);
        free(r->momentum[w]);
    }
    gossip_destroy(&r->gsp);
    free(r->params);
    free(r->grads);
    free(r->momentum);
    free(r->batch_x);
    free(r->batch_y);
    free(r->perm);
    if (r->cons.mean) consensus_free(&r->cons);
    model_destroy(&r->net);
    dataset_free(&r->train);
    dataset_free(&r->test);
}

/* ---------------------------------------------------------------- one step */

typedef struct {
    double loss, grad_norm, xi, theta;
    int rounds;
    double compute_s, comm_s;
} step_result;

static step_result train_step(run_state *r, int epoch, int64_t step_in_epoch, int64_t step) {
    const ccdl_spec *s = r->spec;
    const int per = r->lay.per_rank, b = s->schedule.local_batch;
    const float lr = (float)schedule_lr(&r->sched, step);
    const sgd_config opt = {(float)s->optimizer.momentum, s->optimizer.nesterov,
                            (float)s->optimizer.weight_decay};
    double loss[per], gnorm[per], theta2[per];
    step_result res = {0};
    double t0 = wall_seconds();
    (void)epoch;
    for (int w = 0; w < per; w++) {
        int worker = r->lay.first + w;
        const int32_t *idx = r->perm + (int64_t)worker * r->shard + step_in_epoch * b;
        dataset_fill_batch(&r->train, idx, b, r->batch_x, r->batch_y);
        loss[w] =
            model_forward_backward(r->net, r->params[w], r->grads[w], r->batch_x, r->batch_y, b);
        gnorm[w] = vector_norm(r->grads[w], r->d);
        sgd_step(&opt, lr, r->params[w], r->grads[w], r->momentum[w], r->d);
    }
    double t1 = wall_seconds();
    res.theta = NAN;
    if (s->communication.mode == COMM_ALLREDUCE) {
        consensus_average(&r->cons, r->params);
        res.rounds = -1;
    } else {
        gossip_round(r->gsp, r->params, step, theta2);
        res.theta = consensus_distance_estimate(&r->cons, theta2);
        res.rounds = 1;
    }
    res.xi = s->trace.measure_xi ? consensus_distance_exact(&r->cons, r->params) : NAN;
    res.loss = reduce_sum_scalars(&r->lay, r->comm, loss) / s->workers;
    res.grad_norm = reduce_sum_scalars(&r->lay, r->comm, gnorm) / s->workers;
    res.compute_s = t1 - t0;
    res.comm_s = wall_seconds() - t1;
    return res;
}

/* ---------------------------------------------------------------- evaluation */

/* Test loss and accuracy of the averaged model xbar. The test set is split into n fixed
 * slices, one per worker, so the work spreads over ranks while the sums stay canonical. */
static void evaluate_average(run_state *r, double *test_loss, double *test_acc) {
    const int per = r->lay.per_rank, n = r->lay.n;
    reduce_mean_vectors(&r->lay, r->comm, r->params, r->d, r->cons.mean, r->cons.scratch);
    double loss_sum[per], correct[per];
    int32_t *idx = xmalloc(sizeof(int32_t) * EVAL_BATCH);
    for (int w = 0; w < per; w++) {
        int64_t i = r->lay.first + w;
        int64_t lo = i * r->test.count / n, hi = (i + 1) * r->test.count / n;
        double ls = 0;
        int64_t ok = 0;
        for (int64_t a = lo; a < hi; a += EVAL_BATCH) {
            int bsz = (int)(hi - a < EVAL_BATCH ? hi - a : EVAL_BATCH);
            for (int k = 0; k < bsz; k++) idx[k] = (int32_t)(a + k);
            dataset_fill_batch(&r->test, idx, bsz, r->batch_x, r->batch_y);
            model_evaluate(r->net, r->cons.mean, r->batch_x, r->batch_y, bsz, &ls, &ok);
        }
        loss_sum[w] = ls;
        correct[w] = (double)ok;
    }
    free(idx);
    *test_loss = reduce_sum_scalars(&r->lay, r->comm, loss_sum) / (double)r->test.count;
    *test_acc = reduce_sum_scalars(&r->lay, r->comm, correct) / (double)r->test.count;
}

/* ---------------------------------------------------------------- the loop */

static void print_progress(const run_state *r, int epoch, double lr, double train_loss,
                           double test_acc, double xi, double elapsed) {
    int epochs = r->spec->schedule.epochs;
    double eta = elapsed / (epoch + 1) * (epochs - epoch - 1);
    fprintf(stderr,
            "ccdl: %s epoch %d/%d lr %.4g train_loss %.4f test_acc %.4f xi %.3g elapsed %.1fs "
            "eta %.1fs\n",
            r->spec->name, epoch + 1, epochs, lr, train_loss, test_acc, xi, elapsed, eta);
}

static int train_loop(run_state *r, const train_options *opt, ccdl_error *err) {
    const ccdl_spec *s = r->spec;
    const int rank0 = r->lay.rank == 0;
    const int64_t steps = r->sched.steps_per_epoch;
    int phases = schedule_phase_count(&r->sched);
    double phase_max_xi = 0, phase_rounds = 0;
    int64_t phase_steps = 0;
    int phase = 1;
    double start = wall_seconds();
    for (int epoch = 0; epoch < s->schedule.epochs; epoch++) {
        data_epoch_permutation((uint64_t)s->seed, epoch, r->train.count, r->perm);
        double loss_sum = 0, xi_sum = 0, lr = 0;
        for (int64_t k = 0; k < steps; k++) {
            int64_t step = (int64_t)epoch * steps + k;
            int ph = schedule_phase(&r->sched, step);
            if (ph != phase) { /* a phase ended: its row, then reset the accumulators */
                if (rank0) {
                    int64_t a, b;
                    schedule_phase_bounds(&r->sched, phase, &a, &b);
                    trace_phase_row prow = {phase, a, b, phase_max_xi,
                                            phase_steps ? phase_rounds / phase_steps : NAN};
                    trace_append_phase(r->tr, &prow);
                }
                phase = ph, phase_max_xi = 0, phase_rounds = 0, phase_steps = 0;
            }
            lr = schedule_lr(&r->sched, step);
            step_result res = train_step(r, epoch, k, step);
            loss_sum += res.loss;
            xi_sum += res.xi;
            if (res.xi > phase_max_xi) phase_max_xi = res.xi;
            phase_rounds += res.rounds > 0 ? res.rounds : 0;
            phase_steps += res.rounds >= 0;
            if (!isfinite(res.loss)) {
                ccdl_fail(err, CCDL_ERR_RUNTIME, "training diverged at step %lld (loss %g)",
                          (long long)step, res.loss);
                return -1;
            }
            if (rank0) {
                trace_step_row row = {
                    step,      epoch, ph,         lr, res.loss,      res.grad_norm, res.xi,
                    res.theta, NAN,   res.rounds, 0,  res.compute_s, res.comm_s};
                trace_append_step(r->tr, &row);
            }
        }
        double test_loss, test_acc;
        evaluate_average(r, &test_loss, &test_acc);
        double elapsed = wall_seconds() - start;
        if (rank0) {
            trace_epoch_row erow = {epoch,    loss_sum / steps, test_loss,
                                    test_acc, xi_sum / steps,   elapsed};
            trace_append_epoch(r->tr, &erow);
            if (epoch == s->schedule.epochs - 1) {
                int64_t a, b;
                schedule_phase_bounds(&r->sched, phase, &a, &b);
                trace_phase_row prow = {phase, a, b, phase_max_xi,
                                        phase_steps ? phase_rounds / phase_steps : NAN};
                trace_append_phase(r->tr, &prow);
            }
            if (trace_flush(r->tr, err)) return -1;
            if (!opt->quiet)
                print_progress(r, epoch, lr, loss_sum / steps, test_acc, xi_sum / steps, elapsed);
        }
    }
    (void)phases;
    return 0;
}

int train_validate(const ccdl_spec *spec, MPI_Comm comm, ccdl_error *err) {
    run_state r = {0};
    r.spec = spec;
    r.comm = comm;
    int rc = agree(setup_checked(&r, spec->trace.path, err), err, comm);
    teardown(&r);
    return rc;
}

int train_run(const ccdl_spec *spec, const train_options *opt, MPI_Comm comm, ccdl_error *err) {
    run_state r = {0};
    r.spec = spec;
    r.comm = comm;
    const char *path = opt->trace_path ? opt->trace_path : spec->trace.path;
    omp_set_num_threads(spec->threads);
    if (agree(setup_checked(&r, path, err), err, comm)) {
        teardown(&r);
        return -1;
    }
    setup_buffers(&r);
    int rc = 0;
    if (r.lay.rank == 0) {
        char *canon = spec_canonical_json(spec);
        trace_meta meta = {PACKAGE_VERSION, canon, spec->workers, r.lay.ranks, spec->threads};
        r.tr = trace_create(path, &meta, err);
        free(canon);
        if (!r.tr) {
            err->kind = CCDL_ERR_INPUT; /* an unwritable output path is bad input */
            rc = -1;
        }
    }
    if (agree(rc, err, comm)) {
        teardown(&r);
        return -1;
    }
    rc = train_loop(&r, opt, err);
    rc = agree(rc, err, comm);
    if (r.lay.rank == 0) {
        ccdl_error cerr;
        if (trace_close(&r.tr, rc == 0, rc == 0 ? "finished" : err->text, &cerr) && rc == 0) {
            *err = cerr;
            rc = -1;
        }
    }
    rc = agree(rc, err, comm);
    teardown(&r);
    return rc;
}
