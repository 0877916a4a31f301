/* model.c: the "mlp" model on oneDNN 2.6 C-API primitives (see model.h).
 *
 * Layer l maps dim[l] features to dim[l+1]: an inner product, then ReLU for every layer but
 * the last. The loss (softmax cross-entropy over `classes` logits) is plain C: it is tiny,
 * and we want its sums in double.
 *
 * Parameter layout in the caller's flat buffer, layer after layer:
 *     weights (out, in) row-major (oneDNN `oi`), then bias (out).
 * Gradients mirror it exactly. Plain formats only, so the caller's buffers are handed to
 * oneDNN as they are: no reorders, no format_any.
 *
 * Primitives are built once per batch size (a "primitive set") and cached; a call binds the
 * caller's x / params / grads to the memory objects with dnnl_memory_set_data_handle and
 * runs: after a batch size's first call, nothing here allocates or creates primitives
 * (oneDNN's gemm still mallocs small packing buffers inside each execute; the C API offers
 * no way around that). Scratchpads are user-managed for the same reason.
 *
 * Leaves out: convolutional kinds (later), the gradient w.r.t. the input (nobody needs it),
 * and thread control (the caller sets OpenMP threads; oneDNN uses the OpenMP runtime; a
 * change of thread count between calls rebuilds the cached primitives). */
#include "model.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "rng.h"

/* Inner-product layers: n_hidden + 1. Activations: one more (the input). */
#define MODEL_MAX_LAYERS (MODEL_MAX_HIDDEN + 1)

// ---------------------------------------------------------------------------- structures

/* One primitive plus the scratchpad memory it executes with. */
typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_t scratch; /* user scratchpad over the set's shared buffer; NULL if none */
    const char *what;      /* for error messages: "inner product forward", ... */
    int layer;
} op;

/* Everything that depends on the batch size. */
typedef struct {
    int batch;
    /* act[l]: (batch, dim[l]). act[0] is the caller's x, act[n_layers] the logits, the rest
     * hidden activations after ReLU (ReLU runs in place). */
    dnnl_memory_t act[MODEL_MAX_LAYERS + 1];
    /* diff[l]: (batch, dim[l]) gradient w.r.t. act[l], for l >= 1 (diff[0] is never made). */
    dnnl_memory_t diff[MODEL_MAX_LAYERS + 1];
    op ip_fwd[MODEL_MAX_LAYERS];
    op ip_bwd_weights[MODEL_MAX_LAYERS];
    op ip_bwd_data[MODEL_MAX_LAYERS]; /* not for layer 0: no input gradient */
    op relu_fwd[MODEL_MAX_LAYERS];    /* not for the output layer */
    op relu_bwd[MODEL_MAX_LAYERS];
    void *scratch_buf; /* shared by all ops of the set: they run one after another */
} prim_set;

struct model {
    model_config cfg;
    int n_layers;                   /* inner-product layers = n_hidden + 1 */
    int dim[MODEL_MAX_LAYERS + 1];  /* dim[0] = C*H*W, dim[n_layers] = classes */
    size_t w_off[MODEL_MAX_LAYERS]; /* offset of layer l's weights (out, in) */
    size_t b_off[MODEL_MAX_LAYERS]; /* offset of layer l's bias (out) */
    size_t n_params;
    int max_batch;
    int threads; /* omp_get_max_threads() when the cached sets were made */

    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_primitive_attr_t attr; /* user scratchpad mode, for every primitive */

    /* Batch-independent memory objects without a buffer; bound to the caller's params /
     * grads on each call. */
    dnnl_memory_t weights[MODEL_MAX_LAYERS];      // (out, in)
    dnnl_memory_t bias[MODEL_MAX_LAYERS];         // (out)
    dnnl_memory_t diff_weights[MODEL_MAX_LAYERS]; // (out, in)
    dnnl_memory_t diff_bias[MODEL_MAX_LAYERS];    // (out)

    /* Activation scratch for max_batch rows, l >= 1; smaller batches use a prefix. */
    float *act_buf[MODEL_MAX_LAYERS + 1];  // (max_batch, dim[l])
    float *diff_buf[MODEL_MAX_LAYERS + 1]; // (max_batch, dim[l])

    prim_set **sets; /* sets[b] for batch b in 1..max_batch, made on first use */
};

// ---------------------------------------------------------------------------- oneDNN helpers

/* 0 on success; else fills err (CCDL_ERR_RUNTIME, naming the primitive) and returns -1. */
static int dnnl_check(dnnl_status_t st, const char *call, const char *what, int layer, int batch,
                      ccdl_error *err) {
    if (st == dnnl_success) return 0;
    return ccdl_fail(err, CCDL_ERR_RUNTIME, "model: oneDNN %s (layer %d, batch %d): %s: %s", what,
                     layer, batch, call, dnnl_status2str(st));
}

/* Runtime oneDNN failures (binding, executing) have no error channel in the step API, and
 * mean a broken installation rather than bad input: fatal. */
static void dnnl_must(dnnl_status_t st, const char *call, const char *what, int layer) {
    if (st != dnnl_success)
        ccdl_die("model: oneDNN %s (layer %d): %s: %s", what, layer, call, dnnl_status2str(st));
}

static int md_init(dnnl_memory_desc_t *md, int ndims, int64_t d0, int64_t d1, dnnl_format_tag_t tag,
                   const char *what, int layer, int batch, ccdl_error *err) {
    dnnl_dims_t dims = {d0, d1};
    return dnnl_check(dnnl_memory_desc_init_by_tag(md, ndims, dims, dnnl_f32, tag),
                      "dnnl_memory_desc_init_by_tag", what, layer, batch, err);
}

static int mem_create(dnnl_memory_t *mem, const dnnl_memory_desc_t *md, const model *m,
                      void *handle, const char *what, int layer, int batch, ccdl_error *err) {
    return dnnl_check(dnnl_memory_create(mem, md, m->engine, handle), "dnnl_memory_create", what,
                      layer, batch, err);
}

/* Make o's primitive from an op descriptor. If pd_out is given the primitive descriptor is
 * handed back (as the hint for backward primitives; caller destroys it). */
static int op_create(op *o, const_dnnl_op_desc_t desc, const model *m,
                     const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd_out,
                     const char *what, int layer, int batch, ccdl_error *err) {
    dnnl_primitive_desc_t pd = NULL;
    o->what = what;
    o->layer = layer;
    if (dnnl_check(dnnl_primitive_desc_create(&pd, desc, m->attr, m->engine, hint),
                   "dnnl_primitive_desc_create", what, layer, batch, err))
        return -1;
    int rc = dnnl_check(dnnl_primitive_create(&o->prim, pd), "dnnl_primitive_create", what, layer,
                        batch, err);
    if (rc == 0 && pd_out)
        *pd_out = pd;
    else
        dnnl_primitive_desc_destroy(pd);
    return rc;
}

static const dnnl_memory_desc_t *op_scratch_md(const op *o) {
    const_dnnl_primitive_desc_t pd = NULL;
    dnnl_must(dnnl_primitive_get_primitive_desc(o->prim, &pd), "dnnl_primitive_get_primitive_desc",
              o->what, o->layer);
    return dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
}

static size_t op_scratch_size(const op *o) {
    if (!o->prim) return 0;
    const dnnl_memory_desc_t *md = op_scratch_md(o);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

static void op_destroy(op *o) {
    if (o->scratch) dnnl_memory_destroy(o->scratch);
    if (o->prim) dnnl_primitive_destroy(o->prim);
    o->scratch = NULL;
    o->prim = NULL;
}

/* Execute o; args has room for one more entry (the scratchpad). */
static void op_run(const model *m, const op *o, dnnl_exec_arg_t *args, int nargs) {
    if (o->scratch) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, o->scratch};
    dnnl_must(dnnl_primitive_execute(o->prim, m->stream, nargs, args), "dnnl_primitive_execute",
              o->what, o->layer);
}

static void mem_bind(dnnl_memory_t mem, const void *ptr, const char *what, int layer) {
    /* oneDNN takes void *; read-only tensors (x, params) are only ever read through it. */
    dnnl_must(dnnl_memory_set_data_handle(mem, (void *)(uintptr_t)ptr),
              "dnnl_memory_set_data_handle", what, layer);
}

// ---------------------------------------------------------------------------- primitive sets

static void set_destroy(prim_set *s, int n_layers) {
    if (!s) return;
    for (int l = 0; l <= n_layers; l++) {
        if (s->act[l]) dnnl_memory_destroy(s->act[l]);
        if (s->diff[l]) dnnl_memory_destroy(s->diff[l]);
    }
    for (int l = 0; l < n_layers; l++) {
        op_destroy(&s->ip_fwd[l]);
        op_destroy(&s->ip_bwd_weights[l]);
        op_destroy(&s->ip_bwd_data[l]);
        op_destroy(&s->relu_fwd[l]);
        op_destroy(&s->relu_bwd[l]);
    }
    free(s->scratch_buf);
    free(s);
}

/* Primitives of layer l for batch b; pds are only kept as hints for the backward ones. */
static int set_make_layer(prim_set *s, const model *m, int l, ccdl_error *err) {
    int b = s->batch, in = m->dim[l], out = m->dim[l + 1];
    int hidden = l < m->n_layers - 1;
    dnnl_memory_desc_t src_md, w_md, b_md, dst_md;
    dnnl_inner_product_desc_t ip_fwd_d, ip_bwd_w_d, ip_bwd_d_d;
    dnnl_eltwise_desc_t relu_fwd_d, relu_bwd_d;
    dnnl_primitive_desc_t ip_pd = NULL, relu_pd = NULL;
    const char *what = "inner product forward";
    int rc = -1;

    if (md_init(&src_md, 2, b, in, dnnl_nc, what, l, b, err) ||
        md_init(&w_md, 2, out, in, dnnl_oi, what, l, b, err) ||
        md_init(&b_md, 1, out, 0, dnnl_x, what, l, b, err) ||
        md_init(&dst_md, 2, b, out, dnnl_nc, what, l, b, err))
        goto done;

    if (dnnl_check(dnnl_inner_product_forward_desc_init(&ip_fwd_d, dnnl_forward_training, &src_md,
                                                        &w_md, &b_md, &dst_md),
                   "dnnl_inner_product_forward_desc_init", what, l, b, err) ||
        op_create(&s->ip_fwd[l], &ip_fwd_d, m, NULL, &ip_pd, what, l, b, err))
        goto done;

    what = "inner product backward weights";
    if (dnnl_check(dnnl_inner_product_backward_weights_desc_init(&ip_bwd_w_d, &src_md, &w_md, &b_md,
                                                                 &dst_md),
                   "dnnl_inner_product_backward_weights_desc_init", what, l, b, err) ||
        op_create(&s->ip_bwd_weights[l], &ip_bwd_w_d, m, ip_pd, NULL, what, l, b, err))
        goto done;

    if (l > 0) {
        what = "inner product backward data";
        if (dnnl_check(
                dnnl_inner_product_backward_data_desc_init(&ip_bwd_d_d, &src_md, &w_md, &dst_md),
                "dnnl_inner_product_backward_data_desc_init", what, l, b, err) ||
            op_create(&s->ip_bwd_data[l], &ip_bwd_d_d, m, ip_pd, NULL, what, l, b, err))
            goto done;
    }

    if (hidden) {
        /* relu_use_dst_for_bwd lets ReLU run in place: backward needs only its output,
         * which is also the next layer's input, so no pre-activation copy is kept. */
        what = "eltwise relu forward";
        if (dnnl_check(dnnl_eltwise_forward_desc_init(&relu_fwd_d, dnnl_forward_training,
                                                      dnnl_eltwise_relu_use_dst_for_bwd, &dst_md,
                                                      0.f, 0.f),
                       "dnnl_eltwise_forward_desc_init", what, l, b, err) ||
            op_create(&s->relu_fwd[l], &relu_fwd_d, m, NULL, &relu_pd, what, l, b, err))
            goto done;
        what = "eltwise relu backward";
        if (dnnl_check(dnnl_eltwise_backward_desc_init(&relu_bwd_d,
                                                       dnnl_eltwise_relu_use_dst_for_bwd, &dst_md,
                                                       &dst_md, 0.f, 0.f),
                       "dnnl_eltwise_backward_desc_init", what, l, b, err) ||
            op_create(&s->relu_bwd[l], &relu_bwd_d, m, relu_pd, NULL, what, l, b, err))
            goto done;
    }

    /* Activation memory: act[l+1] / diff[l+1] live in the model's scratch; act[0] is bound
     * to x per call. */
    what = "activation memory";
    if (l == 0 && mem_create(&s->act[0], &src_md, m, DNNL_MEMORY_NONE, what, l, b, err)) goto done;
    if (mem_create(&s->act[l + 1], &dst_md, m, m->act_buf[l + 1], what, l, b, err) ||
        mem_create(&s->diff[l + 1], &dst_md, m, m->diff_buf[l + 1], what, l, b, err))
        goto done;
    rc = 0;
done:
    if (ip_pd) dnnl_primitive_desc_destroy(ip_pd);
    if (relu_pd) dnnl_primitive_desc_destroy(relu_pd);
    return rc;
}

/* One scratchpad buffer for the whole set, sized for its hungriest primitive. */
static int set_make_scratch(prim_set *s, const model *m, ccdl_error *err) {
    op *all[5 * MODEL_MAX_LAYERS];
    int n = 0;
    for (int l = 0; l < m->n_layers; l++) {
        all[n++] = &s->ip_fwd[l];
        all[n++] = &s->ip_bwd_weights[l];
        all[n++] = &s->ip_bwd_data[l];
        all[n++] = &s->relu_fwd[l];
        all[n++] = &s->relu_bwd[l];
    }
    size_t most = 0;
    for (int i = 0; i < n; i++) {
        size_t size = op_scratch_size(all[i]);
        if (size > most) most = size;
    }
    if (most == 0) return 0;
    s->scratch_buf = xalloc_floats((most + sizeof(float) - 1) / sizeof(float));
    for (int i = 0; i < n; i++) {
        if (op_scratch_size(all[i]) == 0) continue;
        if (mem_create(&all[i]->scratch, op_scratch_md(all[i]), m, s->scratch_buf, "scratchpad",
                       all[i]->layer, s->batch, err))
            return -1;
    }
    return 0;
}

static prim_set *set_create(const model *m, int batch, ccdl_error *err) {
    prim_set *s = xcalloc(1, sizeof *s);
    s->batch = batch;
    for (int l = 0; l < m->n_layers; l++)
        if (set_make_layer(s, m, l, err)) goto fail;
    if (set_make_scratch(s, m, err)) goto fail;
    return s;
fail:
    set_destroy(s, m->n_layers);
    return NULL;
}

/* The cached set for this batch size, made on first use. */
static prim_set *set_get(model *m, int batch) {
    if (batch < 1 || batch > m->max_batch)
        ccdl_die("model: batch %d outside 1..%d (max_batch)", batch, m->max_batch);
    /* oneDNN sizes scratchpads and work splits for the thread count seen at creation and
     * must run with the same one; if the caller changed it, rebuild (rare, cheap). */
    int threads = omp_get_max_threads();
    if (threads != m->threads) {
        for (int b = 1; b <= m->max_batch; b++) {
            set_destroy(m->sets[b], m->n_layers);
            m->sets[b] = NULL;
        }
        m->threads = threads;
    }
    if (!m->sets[batch]) {
        ccdl_error err = {0};
        m->sets[batch] = set_create(m, batch, &err);
        if (!m->sets[batch]) ccdl_die("%s", err.text);
    }
    return m->sets[batch];
}

// ---------------------------------------------------------------------------- create, destroy

static int config_check(const model_config *cfg, int max_batch, ccdl_error *err) {
    if (strncmp(cfg->kind, "mlp", sizeof cfg->kind) != 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model.kind: unknown kind \"%.*s\" (known: mlp)",
                         (int)sizeof cfg->kind, cfg->kind);
    if (cfg->n_hidden < 0 || cfg->n_hidden > MODEL_MAX_HIDDEN)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model.n_hidden: %d is outside 0..%d", cfg->n_hidden,
                         MODEL_MAX_HIDDEN);
    for (int i = 0; i < cfg->n_hidden; i++)
        if (cfg->hidden[i] <= 0)
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "model.hidden[%d]: width must be positive, got %d", i, cfg->hidden[i]);
    if (cfg->in_channels <= 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model.in_channels: must be positive, got %d",
                         cfg->in_channels);
    if (cfg->in_height <= 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model.in_height: must be positive, got %d",
                         cfg->in_height);
    if (cfg->in_width <= 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model.in_width: must be positive, got %d",
                         cfg->in_width);
    if ((int64_t)cfg->in_channels * cfg->in_height * cfg->in_width > INT_MAX)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "model.in_channels x in_height x in_width: %d x %d x %d is too large",
                         cfg->in_channels, cfg->in_height, cfg->in_width);
    if (cfg->classes <= 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model.classes: must be positive, got %d",
                         cfg->classes);
    if (max_batch <= 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model: max_batch must be positive, got %d",
                         max_batch);
    return 0;
}

model *model_create(const model_config *cfg, int max_batch, ccdl_error *err) {
    if (config_check(cfg, max_batch, err)) return NULL;

    model *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    m->max_batch = max_batch;
    m->n_layers = cfg->n_hidden + 1;
    m->dim[0] = cfg->in_channels * cfg->in_height * cfg->in_width;
    for (int i = 0; i < cfg->n_hidden; i++) m->dim[i + 1] = cfg->hidden[i];
    m->dim[m->n_layers] = cfg->classes;

    size_t off = 0;
    for (int l = 0; l < m->n_layers; l++) {
        m->w_off[l] = off;
        off += (size_t)m->dim[l + 1] * (size_t)m->dim[l];
        m->b_off[l] = off;
        off += (size_t)m->dim[l + 1];
    }
    m->n_params = off;

    if (dnnl_check(dnnl_engine_create(&m->engine, dnnl_cpu, 0), "dnnl_engine_create", "engine", 0,
                   max_batch, err) ||
        dnnl_check(dnnl_stream_create(&m->stream, m->engine, dnnl_stream_default_flags),
                   "dnnl_stream_create", "stream", 0, max_batch, err) ||
        dnnl_check(dnnl_primitive_attr_create(&m->attr), "dnnl_primitive_attr_create", "attributes",
                   0, max_batch, err) ||
        dnnl_check(dnnl_primitive_attr_set_scratchpad_mode(m->attr, dnnl_scratchpad_mode_user),
                   "dnnl_primitive_attr_set_scratchpad_mode", "attributes", 0, max_batch, err))
        goto fail;

    for (int l = 0; l < m->n_layers; l++) {
        dnnl_memory_desc_t w_md, b_md;
        const char *what = "parameter memory";
        if (md_init(&w_md, 2, m->dim[l + 1], m->dim[l], dnnl_oi, what, l, max_batch, err) ||
            md_init(&b_md, 1, m->dim[l + 1], 0, dnnl_x, what, l, max_batch, err) ||
            mem_create(&m->weights[l], &w_md, m, DNNL_MEMORY_NONE, what, l, max_batch, err) ||
            mem_create(&m->bias[l], &b_md, m, DNNL_MEMORY_NONE, what, l, max_batch, err) ||
            mem_create(&m->diff_weights[l], &w_md, m, DNNL_MEMORY_NONE, what, l, max_batch, err) ||
            mem_create(&m->diff_bias[l], &b_md, m, DNNL_MEMORY_NONE, what, l, max_batch, err))
            goto fail;
    }
    for (int l = 1; l <= m->n_layers; l++) {
        m->act_buf[l] = xalloc_floats((size_t)max_batch * (size_t)m->dim[l]);
        m->diff_buf[l] = xalloc_floats((size_t)max_batch * (size_t)m->dim[l]);
    }

    /* The training batch's set is made now so oneDNN problems surface here, with an error
     * the caller can report, instead of in the middle of training. */
    m->sets = xcalloc((size_t)max_batch + 1, sizeof *m->sets);
    m->threads = omp_get_max_threads();
    m->sets[max_batch] = set_create(m, max_batch, err);
    if (!m->sets[max_batch]) goto fail;
    return m;
fail:
    model_destroy(&m);
    return NULL;
}

void model_destroy(model **mp) {
    if (!mp || !*mp) return;
    model *m = *mp;
    if (m->sets)
        for (int b = 1; b <= m->max_batch; b++) set_destroy(m->sets[b], m->n_layers);
    free(m->sets);
    for (int l = 0; l < m->n_layers; l++) {
        if (m->weights[l]) dnnl_memory_destroy(m->weights[l]);
        if (m->bias[l]) dnnl_memory_destroy(m->bias[l]);
        if (m->diff_weights[l]) dnnl_memory_destroy(m->diff_weights[l]);
        if (m->diff_bias[l]) dnnl_memory_destroy(m->diff_bias[l]);
    }
    for (int l = 0; l <= m->n_layers; l++) {
        free(m->act_buf[l]);
        free(m->diff_buf[l]);
    }
    if (m->attr) dnnl_primitive_attr_destroy(m->attr);
    if (m->stream) dnnl_stream_destroy(m->stream);
    if (m->engine) dnnl_engine_destroy(m->engine);
    free(m);
    *mp = NULL;
}

size_t model_param_count(const model *m) {
    return m->n_params;
}

void model_init_params(const model *m, float *params, uint64_t seed) {
    for (int l = 0; l < m->n_layers; l++) {
        /* One stream per layer: layer l's values depend on (seed, l) only. */
        rng_t r;
        rng_seed(&r, seed, RNG_INIT, (uint64_t)l, 0);
        double std = sqrt(2.0 / m->dim[l]); /* He et al. 2015, fan_in, for ReLU */
        size_t n_w = (size_t)m->dim[l + 1] * (size_t)m->dim[l];
        float *w = params + m->w_off[l];
        for (size_t i = 0; i < n_w; i++) w[i] = (float)(std * rng_normal(&r));
        memset(params + m->b_off[l], 0, (size_t)m->dim[l + 1] * sizeof(float));
    }
}

// ---------------------------------------------------------------------------- running

static void bind(model *m, prim_set *s, const float *params, float *grads, const float *x) {
    mem_bind(s->act[0], x, "input memory", 0);
    for (int l = 0; l < m->n_layers; l++) {
        mem_bind(m->weights[l], params + m->w_off[l], "weights memory", l);
        mem_bind(m->bias[l], params + m->b_off[l], "bias memory", l);
        if (!grads) continue;
        mem_bind(m->diff_weights[l], grads + m->w_off[l], "weights gradient memory", l);
        mem_bind(m->diff_bias[l], grads + m->b_off[l], "bias gradient memory", l);
    }
}

/* act[0] -> logits in m->act_buf[n_layers]. */
static void forward(model *m, prim_set *s) {
    for (int l = 0; l < m->n_layers; l++) {
        dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, s->act[l]},
                                   {DNNL_ARG_WEIGHTS, m->weights[l]},
                                   {DNNL_ARG_BIAS, m->bias[l]},
                                   {DNNL_ARG_DST, s->act[l + 1]}};
        op_run(m, &s->ip_fwd[l], args, 4);
        if (!s->relu_fwd[l].prim) continue;
        dnnl_exec_arg_t relu_args[3] = {{DNNL_ARG_SRC, s->act[l + 1]},
                                        {DNNL_ARG_DST, s->act[l + 1]}};
        op_run(m, &s->relu_fwd[l], relu_args, 2);
    }
    dnnl_must(dnnl_stream_wait(m->stream), "dnnl_stream_wait", "forward", 0);
}

/* diff[n_layers] (set by the loss) -> grads. */
static void backward(model *m, prim_set *s) {
    for (int l = m->n_layers - 1; l >= 0; l--) {
        dnnl_exec_arg_t w_args[5] = {{DNNL_ARG_SRC, s->act[l]},
                                     {DNNL_ARG_DIFF_DST, s->diff[l + 1]},
                                     {DNNL_ARG_DIFF_WEIGHTS, m->diff_weights[l]},
                                     {DNNL_ARG_DIFF_BIAS, m->diff_bias[l]}};
        op_run(m, &s->ip_bwd_weights[l], w_args, 4);
        if (l == 0) break;
        dnnl_exec_arg_t d_args[4] = {{DNNL_ARG_DIFF_DST, s->diff[l + 1]},
                                     {DNNL_ARG_WEIGHTS, m->weights[l]},
                                     {DNNL_ARG_DIFF_SRC, s->diff[l]}};
        op_run(m, &s->ip_bwd_data[l], d_args, 3);
        /* act[l] is the output of layer l-1's ReLU: gate its gradient in place. */
        dnnl_exec_arg_t r_args[4] = {{DNNL_ARG_DST, s->act[l]},
                                     {DNNL_ARG_DIFF_DST, s->diff[l]},
                                     {DNNL_ARG_DIFF_SRC, s->diff[l]}};
        op_run(m, &s->relu_bwd[l - 1], r_args, 3);
    }
    dnnl_must(dnnl_stream_wait(m->stream), "dnnl_stream_wait", "backward", 0);
}

/* Softmax cross-entropy over logits (batch, classes). Returns the SUM of per-sample losses;
 * if dlogits, writes d(mean loss)/d(logits) = (softmax - onehot) / batch; if correct, adds
 * the number of samples whose argmax (lowest index on ties) is the label. */
static double softmax_xent(const float *logits, const int32_t *y, int batch, int classes,
                           float *dlogits, int64_t *correct) {
    double total = 0;
    for (int i = 0; i < batch; i++) {
        const float *z = logits + (size_t)i * classes;
        int label = y[i];
        if (label < 0 || label >= classes)
            ccdl_die("model: label %d of sample %d is outside 0..%d", label, i, classes - 1);
        int arg = 0;
        for (int c = 1; c < classes; c++)
            if (z[c] > z[arg]) arg = c;
        double zmax = z[arg], sum = 0;
        for (int c = 0; c < classes; c++) sum += exp((double)z[c] - zmax);
        total += zmax + log(sum) - (double)z[label];
        if (correct && arg == label) (*correct)++;
        if (!dlogits) continue;
        float *g = dlogits + (size_t)i * classes;
        for (int c = 0; c < classes; c++) {
            double p = exp((double)z[c] - zmax) / sum;
            g[c] = (float)((p - (c == label)) / batch);
        }
    }
    return total;
}

float model_forward_backward(model *m, const float *params, float *grads, const float *x,
                             const int32_t *y, int batch) {
    prim_set *s = set_get(m, batch);
    bind(m, s, params, grads, x);
    forward(m, s);
    int L = m->n_layers;
    double sum = softmax_xent(m->act_buf[L], y, batch, m->dim[L], m->diff_buf[L], NULL);
    backward(m, s);
    return (float)(sum / batch);
}

void model_evaluate(model *m, const float *params, const float *x, const int32_t *y, int batch,
                    double *loss_sum, int64_t *correct) {
    prim_set *s = set_get(m, batch);
    bind(m, s, params, NULL, x);
    forward(m, s);
    int L = m->n_layers;
    *loss_sum += softmax_xent(m->act_buf[L], y, batch, m->dim[L], NULL, correct);
}
