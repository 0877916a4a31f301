/* test_slowmo.c (MPI, one rank hosting every worker): SlowMo's outer step against the closed
 * form of local gradient descent on quadratics, and its degenerate case alpha = 1, beta = 0
 * against the exact average, bit for bit. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "consensus.h"
#include "rng.h"
#include "slowmo.h"

enum { N = 4, D = 3, TAU = 3, OUTER = 5 };

/* Worker i minimizes f_i(x) = a_i / 2 ||x - c_i||^2: a gradient step with rate g multiplies
 * x - c_i by r_i = 1 - g a_i, so tau steps from y give c_i + r_i^tau (y - c_i). */
static const double A[N] = {0.5, 1.0, 1.5, 2.0};

static void setup(worker_state *ws, slowmo *sm, const struct spec_slowmo *cfg, consensus *cons,
                  layout *lay, int *h_x) {
    ccdl_error err;
    CHECK(layout_init(lay, N, 1, 0, &err) == 0);
    worker_state_init(ws, N);
    *h_x = worker_state_declare(ws, "params", D, WS_GOSSIPED);
    slowmo_declare(sm, cfg, ws, D);
    consensus_init(cons, lay, MPI_COMM_WORLD, D);
}

/* Several outer steps of local GD against the same recursion in double, from the closed
 * form of the local phase. */
static void test_quadratic(void) {
    const double gamma = 0.1;
    const struct spec_slowmo cfg = {TAU, 0.8, 0.6};
    worker_state ws;
    slowmo sm;
    consensus cons;
    layout lay;
    int hx;
    setup(&ws, &sm, &cfg, &cons, &lay, &hx);
    double c[N][D], start[N][D];
    rng_t r;
    rng_seed(&r, 5, RNG_TEST, 0, 0);
    float **x = worker_state_buffers(&ws, hx);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < D; k++) {
            c[i][k] = rng_normal(&r);
            start[i][k] = x[i][k] = (float)rng_normal(&r); /* the workers start apart */
        }
    gossip_group gg = {1, {x}, {NULL}};
    slowmo_start(&sm, &ws, x, &cons);

    /* the oracle: x0 starts at the workers' mean, u at 0 */
    double x0[D], u[D] = {0}, y[N][D];
    for (int k = 0; k < D; k++) {
        x0[k] = 0;
        for (int i = 0; i < N; i++) x0[k] += start[i][k] / N;
    }
    memcpy(y, start, sizeof y);
    traffic sent = {0};
    for (int64_t step = 0; step < (int64_t)TAU * OUTER; step++) {
        for (int i = 0; i < N; i++)
            for (int k = 0; k < D; k++)
                x[i][k] -= (float)(gamma * A[i]) * (x[i][k] - (float)c[i][k]);
        CHECK(slowmo_due(&sm, step) == ((step + 1) % TAU == 0));
        if (!slowmo_due(&sm, step)) continue;
        slowmo_outer_step(&sm, &ws, &gg, &cons, gamma, 0, &sent);
        for (int k = 0; k < D; k++) {
            double mean = 0;
            for (int i = 0; i < N; i++)
                mean += (c[i][k] + pow(1 - gamma * A[i], TAU) * (y[i][k] - c[i][k])) / N;
            u[k] = cfg.beta * u[k] + (x0[k] - mean) / gamma;
            x0[k] -= cfg.alpha * gamma * u[k];
            for (int i = 0; i < N; i++) y[i][k] = x0[k];
        }
        for (int i = 0; i < N; i++)
            for (int k = 0; k < D; k++) CHECK_CLOSE(x[i][k], x0[k], 1e-5, 1e-5);
    }
    /* every worker holds the same u and x0 */
    float **su = worker_state_buffers(&ws, sm.h_u), **sx = worker_state_buffers(&ws, sm.h_x0);
    for (int k = 0; k < D; k++) CHECK_CLOSE(su[N - 1][k], u[k], 1e-4, 1e-4);
    for (int i = 1; i < N; i++) {
        CHECK(memcmp(su[i], su[0], D * sizeof(float)) == 0);
        CHECK(memcmp(sx[i], x[i], D * sizeof(float)) == 0);
    }
    /* each outer step is one ring all-reduce of the parameters */
    CHECK_CLOSE(sent.bytes_max, OUTER * 2.0 * (N - 1) / N * D * 4, 0, 1e-12);
    CHECK_CLOSE(sent.messages_mean, OUTER * 2.0 * (N - 1), 0, 0);
    consensus_free(&cons);
    worker_state_free(&ws);
}

/* alpha = 1, beta = 0: the outer step is the exact average, with its bits. */
static void test_plain_average(void) {
    const struct spec_slowmo cfg = {1, 1.0, 0.0};
    worker_state ws;
    slowmo sm;
    consensus cons;
    layout lay;
    int hx;
    setup(&ws, &sm, &cfg, &cons, &lay, &hx);
    float **x = worker_state_buffers(&ws, hx), copy[N][D];
    rng_t r;
    rng_seed(&r, 6, RNG_TEST, 0, 0);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < D; k++) copy[i][k] = x[i][k] = (float)(1e3 * rng_normal(&r));
    gossip_group gg = {1, {x}, {NULL}};
    slowmo_start(&sm, &ws, x, &cons);
    for (int i = 0; i < N; i++) x[i][0] += 0.37f; /* a step away from x0 */
    for (int i = 0; i < N; i++) copy[i][0] = x[i][0];
    traffic sent = {0};
    slowmo_outer_step(&sm, &ws, &gg, &cons, 0.013, 0, &sent);
    float *rows[N];
    for (int i = 0; i < N; i++) rows[i] = copy[i];
    consensus_average(&cons, rows);
    for (int i = 0; i < N; i++) CHECK(memcmp(x[i], copy[i], sizeof copy[i]) == 0);
    consensus_free(&cons);
    worker_state_free(&ws);
}

/* A second mixed buffer (gossiped moments) is averaged with the parameters and paid for; a
 * step whose policy averaged already is not averaged or paid for again, and ends the same. */
static void test_group_and_averaged(void) {
    const struct spec_slowmo cfg = {2, 0.7, 0.5};
    worker_state ws;
    slowmo sm;
    consensus cons;
    layout lay;
    int hx;
    setup(&ws, &sm, &cfg, &cons, &lay, &hx);
    int hm = worker_state_declare(&ws, "moments", D, WS_GOSSIPED);
    float **x = worker_state_buffers(&ws, hx), **m = worker_state_buffers(&ws, hm);
    rng_t r;
    rng_seed(&r, 7, RNG_TEST, 0, 0);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < D; k++)
            x[i][k] = (float)rng_normal(&r), m[i][k] = (float)rng_normal(&r);
    gossip_group gg = {2, {x, m}, {NULL, NULL}};
    slowmo_start(&sm, &ws, x, &cons);
    traffic sent = {0};
    slowmo_outer_step(&sm, &ws, &gg, &cons, 0.1, 0, &sent);
    CHECK_CLOSE(sent.bytes_mean, 2 * 2.0 * (N - 1) / N * D * 4, 0, 1e-12);
    for (int i = 1; i < N; i++) CHECK(memcmp(m[i], m[0], D * sizeof(float)) == 0);
    /* already averaged: the same outer step with nothing to pay */
    float u_before[D], same[D];
    memcpy(u_before, worker_state_buffers(&ws, sm.h_u)[0], sizeof u_before);
    for (int k = 0; k < D; k++) same[k] = x[0][k] * 0.5f + 0.25f;
    for (int i = 0; i < N; i++) memcpy(x[i], same, sizeof same); /* as an All-Reduce leaves them */
    traffic none = {0};
    slowmo_outer_step(&sm, &ws, &gg, &cons, 0.1, 1, &none);
    CHECK(none.bytes_mean == 0 && none.messages_max == 0);
    float **x0 = worker_state_buffers(&ws, sm.h_x0), **u = worker_state_buffers(&ws, sm.h_u);
    for (int k = 0; k < D; k++) CHECK_CLOSE(x[N - 1][k], x0[0][k], 0, 0);
    for (int k = 0; k < D; k++) CHECK(u[0][k] != u_before[k]); /* the slow step was taken */
    consensus_free(&cons);
    worker_state_free(&ws);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    test_quadratic();
    test_plain_average();
    test_group_and_averaged();
    MPI_Finalize();
    return check_exit();
}
