/* mlp.c: the "mlp" kind: inner-product layers with ReLU between them (see model.h).
 *
 * Parameter order: for each layer l, weights (dim[l+1], dim[l]) then bias (dim[l+1]). No
 * state. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_kind.h"
#include "rng.h"

#define MLP_MAX_LAYERS (MODEL_MAX_HIDDEN + 1) /* inner-product layers */

typedef struct {
    int n_layers;                 /* inner-product layers = n_hidden + 1 */
    int dim[MLP_MAX_LAYERS + 1];  /* dim[0] = C*H*W, dim[n_layers] = classes */
    size_t w_off[MLP_MAX_LAYERS]; // (dim[l+1], dim[l]) weights of layer l
    size_t b_off[MLP_MAX_LAYERS]; // (dim[l+1]) bias of layer l
} mlp_desc;

/* act[0] = x, act[l] hidden activations after ReLU, act[n_layers] logits */
typedef struct {
    ip_layer ip[MLP_MAX_LAYERS];
    relu_layer relu[MLP_MAX_LAYERS];
    dnnl_memory_t act[MLP_MAX_LAYERS + 1];  // (batch, dim[l])
    dnnl_memory_t dact[MLP_MAX_LAYERS + 1]; // (batch, dim[l]), training, l >= 1
} mlp_layers;

static int mlp_check(const model_config *cfg, ccdl_error *err) {
    if (cfg->n_hidden < 0 || cfg->n_hidden > MODEL_MAX_HIDDEN)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model.n_hidden: %d is outside 0..%d", cfg->n_hidden,
                         MODEL_MAX_HIDDEN);
    for (int i = 0; i < cfg->n_hidden; i++)
        if (cfg->hidden[i] <= 0)
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "model.hidden[%d]: width must be positive, got %d", i, cfg->hidden[i]);
    return 0;
}

static void *mlp_describe(const model_config *cfg, model_tensor_list *t, size_t *n_state) {
    mlp_desc *d = xcalloc(1, sizeof *d);
    d->n_layers = cfg->n_hidden + 1;
    d->dim[0] = cfg->in_channels * cfg->in_height * cfg->in_width;
    for (int i = 0; i < cfg->n_hidden; i++) d->dim[i + 1] = cfg->hidden[i];
    d->dim[d->n_layers] = cfg->classes;
    for (int l = 0; l < d->n_layers; l++) {
        char name[32];
        const int64_t w_shape[2] = {d->dim[l + 1], d->dim[l]}, b_shape[1] = {d->dim[l + 1]};
        snprintf(name, sizeof name, "fc%d.weight", l);
        d->w_off[l] = model_tensor_add(t, name, TENSOR_WEIGHT, 2, w_shape);
        snprintf(name, sizeof name, "fc%d.bias", l);
        d->b_off[l] = model_tensor_add(t, name, TENSOR_BIAS, 1, b_shape);
    }
    *n_state = 0;
    return d;
}

static void mlp_init_params(const void *desc, const model_config *cfg, float *params,
                            uint64_t seed) {
    (void)cfg;
    const mlp_desc *d = desc;
    for (int l = 0; l < d->n_layers; l++) {
        /* One stream per layer: layer l's values depend on (seed, l) only. */
        rng_t r;
        rng_seed(&r, seed, RNG_INIT, (uint64_t)l, 0);
        const double std = sqrt(2.0 / d->dim[l]); /* He et al. 2015, fan_in, for ReLU */
        const size_t n = (size_t)d->dim[l + 1] * (size_t)d->dim[l];
        for (size_t i = 0; i < n; i++) params[d->w_off[l] + i] = (float)(std * rng_normal(&r));
        memset(params + d->b_off[l], 0, (size_t)d->dim[l + 1] * sizeof(float));
    }
}

static double mlp_flops(const void *desc, const model_config *cfg) {
    (void)cfg;
    const mlp_desc *d = desc;
    double macs = 0;
    for (int l = 0; l < d->n_layers; l++) macs += (double)d->dim[l] * d->dim[l + 1];
    return 2 * macs;
}

static int mlp_set_make(const void *desc, const model_config *cfg, model_set *ms, ccdl_error *err) {
    (void)cfg;
    const mlp_desc *d = desc;
    mlp_layers *L = xcalloc(1, sizeof *L);
    ms->layers = L;
    layer_set *s = &ms->ls;
    const int64_t x_dims[2] = {s->batch, d->dim[0]};
    dnnl_memory_desc_t md;
    if (layer_md_plain(&md, 2, x_dims, err) ||
        layer_set_memory(s, &ms->x, &md, SIZE_MAX, "input", err))
        return -1;
    L->act[0] = ms->x;
    for (int l = 0; l < d->n_layers; l++) {
        char name[16];
        snprintf(name, sizeof name, "fc%d", l);
        if (ip_layer_init(&L->ip[l], s, &md, d->dim[l + 1], l > 0, name, err)) return -1;
        md = L->ip[l].dst_md;
        if (layer_set_memory_new(s, &L->act[l + 1], &md, name, err)) return -1;
        if (s->training && layer_set_memory_new(s, &L->dact[l + 1], &md, name, err)) return -1;
        if (l < d->n_layers - 1 && relu_layer_init(&L->relu[l], s, &md, name, err)) return -1;
    }
    ms->logits = L->act[d->n_layers];
    ms->d_logits = L->dact[d->n_layers];
    return 0;
}

static void mlp_forward(const void *desc, model_set *ms, const float *params, float *state) {
    (void)state;
    const mlp_desc *d = desc;
    mlp_layers *L = ms->layers;
    layer_set *s = &ms->ls;
    for (int l = 0; l < d->n_layers; l++) {
        ip_layer_forward(s, &L->ip[l], params + d->w_off[l], params + d->b_off[l], L->act[l],
                         L->act[l + 1]);
        if (l < d->n_layers - 1) relu_layer_forward(s, &L->relu[l], L->act[l + 1]);
    }
}

static void mlp_backward(const void *desc, model_set *ms, const float *params, float *grads) {
    const mlp_desc *d = desc;
    mlp_layers *L = ms->layers;
    layer_set *s = &ms->ls;
    for (int l = d->n_layers - 1; l >= 0; l--) {
        ip_layer_backward(s, &L->ip[l], params + d->w_off[l], grads + d->w_off[l],
                          grads + d->b_off[l], L->act[l], L->dact[l + 1],
                          l > 0 ? L->dact[l] : NULL);
        /* act[l] is the output of layer l-1's ReLU: gate its gradient in place */
        if (l > 0) relu_layer_backward(s, &L->relu[l - 1], L->act[l], L->dact[l]);
    }
}

const model_kind mlp_kind = {
    .name = "mlp",
    .check = mlp_check,
    .describe = mlp_describe,
    .init_params = mlp_init_params,
    .flops_per_sample = mlp_flops,
    .set_make = mlp_set_make,
    .set_free = free,
    .forward = mlp_forward,
    .backward = mlp_backward,
};
