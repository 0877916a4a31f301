/* test_optim.c: SGD/Nesterov and Adam against PyTorch's updates written out by hand in
 * double, the weight-decay mask, and the learning-rate schedule against closed forms. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "optim.h"
#include "schedule.h"

/* PyTorch torch.optim.SGD, one scalar, in double: the oracle. */
static double torch_sgd(double x, const double *g, int steps, double lr, double mu, int nesterov,
                        double wd) {
    double buf = 0;
    for (int t = 0; t < steps; t++) {
        double d = g[t] + wd * x;
        buf = t == 0 ? d : mu * buf + d;
        x -= lr * (nesterov ? d + mu * buf : buf);
    }
    return x;
}

static void check_sgd(float mu, int nesterov, float wd) {
    const double g[4] = {0.5, -1.25, 2.0, 0.125};
    float x[1] = {1.5f}, m[1] = {0};
    sgd_config cfg = {mu, nesterov, wd};
    for (int t = 0; t < 4; t++) {
        float grad[1] = {(float)g[t]};
        sgd_step(&cfg, 0.1f, x, grad, m, 1, NULL);
    }
    CHECK_CLOSE(x[0], torch_sgd(1.5, g, 4, 0.1, mu, nesterov, wd), 1e-6, 1e-6);
}

/* torch.optim.Adam (amsgrad off), one scalar, in double: the oracle.
 *   g = grad + wd x; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2
 *   x -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
static double torch_adam(double x, const double *g, int steps, double lr, double b1, double b2,
                         double eps, double wd) {
    double m = 0, v = 0;
    for (int t = 1; t <= steps; t++) {
        double d = g[t - 1] + wd * x;
        m = b1 * m + (1 - b1) * d;
        v = b2 * v + (1 - b2) * d * d;
        x -= lr / (1 - pow(b1, t)) * m / (sqrt(v) / sqrt(1 - pow(b2, t)) + eps);
    }
    return x;
}

/* Tolerance 1e-6 relative: float state over a few steps against double. */
static void check_adam(float b1, float b2, float eps, float wd) {
    const double g[5] = {0.5, -1.25, 2.0, 0.125, -0.03};
    float x[1] = {1.5f}, m[1] = {0}, v[1] = {0};
    adam_config cfg = {b1, b2, eps, wd};
    for (int t = 1; t <= 5; t++) {
        float grad[1] = {(float)g[t - 1]};
        adam_step(&cfg, 0.01f, t, x, grad, m, v, NULL, 1);
    }
    CHECK_CLOSE(x[0], torch_adam(1.5, g, 5, 0.01, b1, b2, eps, wd), 1e-7, 1e-6);
}

/* The mask: 0 entries get no decay, 1 entries exactly the unmasked update (bitwise), for
 * SGD (with and without momentum) and Adam. */
static void check_masks(void) {
    enum { D = 6 };
    const float mask[D] = {1, 0, 1, 0, 1, 1}, ones[D] = {1, 1, 1, 1, 1, 1};
    float grad[D] = {0.1f, -0.2f, 0.3f, 0.0f, -0.5f, 0.25f};
    for (int kind = 0; kind < 3; kind++) {
        float xa[D], xb[D], xc[D], xn[D], b1[D] = {0}, b2[D] = {0}, b3[D] = {0}, b4[D] = {0};
        float v1[D] = {0}, v2[D] = {0}, v3[D] = {0}, v4[D] = {0};
        for (int k = 0; k < D; k++) xa[k] = xb[k] = xc[k] = xn[k] = 1.0f + 0.5f * k;
        sgd_config sgd = {kind == 1 ? 0.9f : 0.0f, kind == 1, 0.1f}, sgd0 = sgd;
        sgd0.weight_decay = 0;
        adam_config adam = {0.9f, 0.999f, 1e-8f, 0.1f}, adam0 = adam;
        adam0.weight_decay = 0;
        for (int t = 1; t <= 3; t++) {
            if (kind < 2) {
                sgd_step(&sgd, 0.1f, xa, grad, b1, D, mask);
                sgd_step(&sgd, 0.1f, xb, grad, b2, D, NULL);
                sgd_step(&sgd, 0.1f, xc, grad, b3, D, ones);
                sgd_step(&sgd0, 0.1f, xn, grad, b4, D, NULL);
            } else {
                adam_step(&adam, 0.1f, t, xa, grad, b1, v1, mask, D);
                adam_step(&adam, 0.1f, t, xb, grad, b2, v2, NULL, D);
                adam_step(&adam, 0.1f, t, xc, grad, b3, v3, ones, D);
                adam_step(&adam0, 0.1f, t, xn, grad, b4, v4, NULL, D);
            }
        }
        int ok = memcmp(xb, xc, sizeof xb) == 0;
        for (int k = 0; k < D; k++) ok &= mask[k] == 0 ? xa[k] == xn[k] : xa[k] == xb[k];
        ok &= xb[0] != xn[0]; /* decay really acts where the mask is 1 */
        CHECK_MSG(ok, "decay mask, optimizer %d", kind);
    }
}

int main(void) {
    check_adam(0.9f, 0.999f, 1e-8f, 0.0f);
    check_adam(0.9f, 0.999f, 1e-8f, 1e-2f);
    check_adam(0.5f, 0.9f, 1e-3f, 0.0f);
    check_masks();
    check_sgd(0.0f, 0, 0.0f);
    check_sgd(0.9f, 0, 0.0f);
    check_sgd(0.9f, 1, 0.0f);
    check_sgd(0.9f, 1, 1e-2f);
    float v[3] = {3, 4, 12};
    CHECK_CLOSE(vector_norm(v, 3), 13.0, 0, 0);

    /* the paper's recipe: lr 0.1 per 64 samples, n = 16, batch 32, 5 warm-up epochs,
     * decays at 50% and 75%, 10 steps per epoch, 100 epochs */
    ccdl_spec s;
    memset(&s, 0, sizeof s);
    s.workers = 16;
    s.schedule.epochs = 100;
    s.schedule.local_batch = 32;
    s.schedule.lr = 0.1;
    s.schedule.scaling = LR_SCALE_LINEAR;
    s.schedule.base_batch = 64;
    s.schedule.warmup_epochs = 5;
    s.schedule.decay_at[0] = 0.5;
    s.schedule.decay_at[1] = 0.75;
    s.schedule.n_decay = 2;
    s.schedule.decay_factor = 0.1;
    schedule sch;
    schedule_init(&sch, &s, 10);
    CHECK(sch.total_steps == 1000);
    CHECK_CLOSE(sch.lr_peak, 0.1 * 16 * 32 / 64, 1e-15, 0);
    CHECK_CLOSE(schedule_lr(&sch, 0), 0.1, 1e-15, 0);
    CHECK_CLOSE(schedule_lr(&sch, 25), 0.1 + (0.8 - 0.1) * 25 / 50, 1e-12, 0);
    CHECK_CLOSE(schedule_lr(&sch, 50), 0.8, 1e-15, 0);
    CHECK_CLOSE(schedule_lr(&sch, 499), 0.8, 1e-15, 0);
    CHECK_CLOSE(schedule_lr(&sch, 500), 0.08, 1e-15, 0);
    CHECK_CLOSE(schedule_lr(&sch, 750), 0.008, 1e-15, 0);
    CHECK(schedule_phase(&sch, 0) == 1 && schedule_phase(&sch, 499) == 1);
    CHECK(schedule_phase(&sch, 500) == 2 && schedule_phase(&sch, 749) == 2);
    CHECK(schedule_phase(&sch, 750) == 3 && schedule_phase(&sch, 999) == 3);
    CHECK(schedule_phase_count(&sch) == 3);
    int64_t a, b;
    schedule_phase_bounds(&sch, 2, &a, &b);
    CHECK(a == 500 && b == 750);
    schedule_phase_bounds(&sch, 3, &a, &b);
    CHECK(a == 750 && b == 1000);

    /* cosine and inverse-sqrt after the same warm-up; phases still from decay_at */
    s.schedule.kind = SCHEDULE_COSINE;
    schedule_init(&sch, &s, 10);
    CHECK_CLOSE(schedule_lr(&sch, 25), 0.1 + (0.8 - 0.1) * 25 / 50, 1e-12, 0);
    CHECK_CLOSE(schedule_lr(&sch, 50), 0.8, 1e-15, 0);
    CHECK_CLOSE(schedule_lr(&sch, 525), 0.4, 1e-12, 0); /* half-way through 50..1000 */
    CHECK_CLOSE(schedule_lr(&sch, 999), 0.8 * 0.5 * (1 + cos(M_PI * 949.0 / 950.0)), 1e-15, 0);
    CHECK(schedule_phase(&sch, 500) == 2 && schedule_phase(&sch, 750) == 3);
    s.schedule.kind = SCHEDULE_INVERSE_SQRT;
    schedule_init(&sch, &s, 10);
    CHECK_CLOSE(schedule_lr(&sch, 50), 0.8, 1e-15, 0);
    CHECK_CLOSE(schedule_lr(&sch, 200), 0.8 * 0.5, 1e-15, 0); /* sqrt(50 / 200) */
    CHECK_CLOSE(schedule_lr(&sch, 800), 0.8 * 0.25, 1e-15, 0);
    s.schedule.kind = SCHEDULE_STEP;

    /* a prolonged phase 1 (Table 6): 100 epochs with decays at 50 and 75, phase 1 gets 30
     * more epochs at its learning rate, phase 3 10: phases of 80, 25 and 35 epochs */
    s.schedule.extra_epochs[0] = 30;
    s.schedule.extra_epochs[1] = 0;
    s.schedule.extra_epochs[2] = 10;
    s.schedule.n_extra = 3;
    CHECK(spec_total_epochs(&s) == 140);
    schedule_init(&sch, &s, 10);
    schedule_phase_bounds(&sch, 1, &a, &b);
    CHECK(a == 0 && b == 800);
    schedule_phase_bounds(&sch, 2, &a, &b);
    CHECK(a == 800 && b == 1050);
    schedule_phase_bounds(&sch, 3, &a, &b);
    CHECK(a == 1050 && b == 1400);
    CHECK_CLOSE(schedule_lr(&sch, 799), 0.8, 1e-15, 0);
    CHECK_CLOSE(schedule_lr(&sch, 800), 0.08, 1e-15, 0);
    CHECK_CLOSE(schedule_lr(&sch, 1399), 0.008, 1e-15, 0);
    s.schedule.n_extra = 0;

    /* no scaling, no decays: constant lr, one phase */
    s.schedule.scaling = LR_SCALE_NONE;
    s.schedule.n_decay = 0;
    s.schedule.warmup_epochs = 0;
    schedule_init(&sch, &s, 10);
    CHECK_CLOSE(schedule_lr(&sch, 999), 0.1, 0, 0);
    CHECK(schedule_phase(&sch, 999) == 1 && schedule_phase_count(&sch) == 1);
    return check_exit();
}
