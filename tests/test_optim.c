/* test_optim.c: SGD/Nesterov against PyTorch's update written out by hand, and the
 * learning-rate schedule against closed forms. */
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
        sgd_step(&cfg, 0.1f, x, grad, m, 1);
    }
    CHECK_CLOSE(x[0], torch_sgd(1.5, g, 4, 0.1, mu, nesterov, wd), 1e-6, 1e-6);
}

int main(void) {
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

    /* no scaling, no decays: constant lr, one phase */
    s.schedule.scaling = LR_SCALE_NONE;
    s.schedule.n_decay = 0;
    s.schedule.warmup_epochs = 0;
    schedule_init(&sch, &s, 10);
    CHECK_CLOSE(schedule_lr(&sch, 999), 0.1, 0, 0);
    CHECK(schedule_phase(&sch, 999) == 1 && schedule_phase_count(&sch) == 1);
    return check_exit();
}
