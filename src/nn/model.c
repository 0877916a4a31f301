/* model.c: what every network kind shares (see model.h and model_kind.h).
 *
 * A model keeps its kind's static description (shapes, and where each parameter tensor and
 * state entry sits in the caller's flat buffers), the tensor list, and a cache of primitive
 * sets, one per (batch size, training or inference), made on first use. All sets share one
 * activation arena (layers.h), sized for the hungriest: the training set at the local batch
 * and the inference set at the evaluation batch never run at the same time.
 *
 * The kinds: mlp.c, resnet.c and transformer.c; a new kind is a module with a model_kind table and
 * an entry in `kinds` below. */
#include "model.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "layers.h"
#include "model_kind.h"
#include "worker_state.h"

/* The kinds, and their names for the spec's field table (which needs a constant array):
 * the same order, checked in config_check. */
static const model_kind *const kinds[] = {&mlp_kind, &resnet20_kind, &transformer_kind};
const char *const model_kind_names[] = {"mlp", "resnet20", "transformer", NULL};
#define N_KINDS ((int)(sizeof kinds / sizeof *kinds))

struct model {
    model_config cfg;
    const model_kind *kind;
    void *desc; /* the kind's static description */
    model_tensor_list tensors;
    size_t n_params, n_state;
    int max_batch;
    int threads; /* omp_get_max_threads() when the cached sets were made */

    layer_env env;
    layer_arena arena;
    model_set **train_sets; /* [b] for batch b in 1..max_batch, made on first use */
    model_set **infer_sets;
    void *rt; /* token kinds: their runtime (primitive sets per batch shape) */
};

static const model_kind *kind_named(const char *name) {
    for (int i = 0; i < N_KINDS; i++)
        if (strcmp(name, kinds[i]->name) == 0) return kinds[i];
    return NULL;
}

int model_kind_takes_tokens(const char *kind) {
    const model_kind *k = kind_named(kind);
    return k && k->tokens_runtime;
}

int model_pad_images_to(const char *kind) {
    const model_kind *k = kind_named(kind);
    return k ? k->pad_images_to : 0;
}

// ---------------------------------------------------------------------------- tensors

size_t model_tensor_add(model_tensor_list *l, const char *name, tensor_role role, int ndims,
                        const int64_t *shape) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->t = xrealloc(l->t, (size_t)l->cap * sizeof *l->t);
    }
    model_tensor *t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->role = role;
    t->ndims = ndims;
    t->count = 1;
    for (int i = 0; i < ndims; i++) t->shape[i] = shape[i], t->count *= (size_t)shape[i];
    t->offset = l->n ? l->t[l->n - 1].offset + l->t[l->n - 1].count : 0;
    l->n++;
    return t->offset;
}

int model_tensor_count(const model *m) {
    return m->tensors.n;
}

const model_tensor *model_tensor_at(const model *m, int i) {
    return i >= 0 && i < m->tensors.n ? &m->tensors.t[i] : NULL;
}

// ---------------------------------------------------------------------------- sets

static void model_set_destroy(const model *m, model_set *ms) {
    if (!ms) return;
    layer_set_destroy(&ms->ls);
    m->kind->set_free(ms->layers);
    free(ms);
}

static model_set *model_set_try(model *m, int batch, int training, dnnl_format_tag_t act_tag,
                                ccdl_error *err) {
    model_set *ms = xcalloc(1, sizeof *ms);
    layer_set_init(&ms->ls, &m->env, batch, training);
    ms->ls.act_tag = act_tag;
    int rc = m->kind->set_make(m->desc, &m->cfg, ms, err);
    if (rc == 0) rc = layer_set_finish(&ms->ls, err);
    if (rc) {
        model_set_destroy(m, ms);
        return NULL;
    }
    return ms;
}

/* oneDNN's layout choice under "any" can land on its reference convolution (10-20x slower):
 * at ResNet widths that are not a multiple of 16 on AVX-512 it picks nhwc with a destination
 * "any", which its jit kernels decline. Then try the activation layouts in turn and keep the
 * first set without reference kernels (or the one with the fewest). Deterministic for a
 * machine: the same ISA makes the same choices. Networks where "any" is clean keep it, and
 * with it their bits. */
static model_set *model_set_create(model *m, int batch, int training, ccdl_error *err) {
    static const dnnl_format_tag_t layouts[] = {dnnl_format_tag_any, dnnl_nhwc, dnnl_nChw8c,
                                                dnnl_nChw16c, dnnl_nchw};
    const int n_layouts = m->kind->layout_search ? (int)(sizeof layouts / sizeof *layouts) : 1;
    int best = 0, best_refs = -1;
    for (int i = 0; i < n_layouts; i++) {
        model_set *ms = model_set_try(m, batch, training, layouts[i], err);
        if (!ms) {
            if (i == 0) return NULL; /* a real failure, not a layout preference */
            continue;
        }
        const int refs = layer_set_reference(&ms->ls);
        if (refs == 0) return ms;
        if (best_refs < 0 || refs < best_refs) best = i, best_refs = refs;
        model_set_destroy(m, ms);
    }
    return model_set_try(m, batch, training, layouts[best], err);
}

static void sets_clear(model *m) {
    for (int b = 0; b <= m->max_batch; b++) {
        if (m->train_sets) {
            model_set_destroy(m, m->train_sets[b]);
            m->train_sets[b] = NULL;
        }
        if (m->infer_sets) {
            model_set_destroy(m, m->infer_sets[b]);
            m->infer_sets[b] = NULL;
        }
    }
}
/* oneDNN sizes scratchpads and work splits for the thread count seen at creation and must
 * run with the same one; if the caller changed it, drop the cache (rare, cheap). */
static void sets_check_threads(model *m) {
    int threads = omp_get_max_threads();
    if (threads == m->threads) return;
    sets_clear(m);
    m->threads = threads;
}

static int set_ensure(model *m, int batch, int training, ccdl_error *err) {
    if (batch < 1 || batch > m->max_batch)
        return ccdl_fail(err, CCDL_ERR_RUNTIME, "model: batch %d outside 1..%d (max_batch)", batch,
                         m->max_batch);
    sets_check_threads(m);
    model_set **sets = training ? m->train_sets : m->infer_sets;
    if (!sets[batch]) sets[batch] = model_set_create(m, batch, training, err);
    return sets[batch] ? 0 : -1;
}

/* The cached set, bound to the arena; failures here are fatal (see model_prepare). */
static model_set *set_get(model *m, int batch, int training) {
    ccdl_error err = {0};
    if (set_ensure(m, batch, training, &err)) ccdl_die("%s", err.text);
    model_set *ms = (training ? m->train_sets : m->infer_sets)[batch];
    layer_set_bind(&ms->ls, &m->arena);
    return ms;
}

// ---------------------------------------------------------------------------- create, destroy

static int config_check(const model_config *cfg, int max_batch, const model_kind **kind,
                        ccdl_error *err) {
    *kind = NULL;
    for (int i = 0; i <= N_KINDS; i++)
        if ((i < N_KINDS) != (model_kind_names[i] != NULL) ||
            (i < N_KINDS && strcmp(model_kind_names[i], kinds[i]->name) != 0))
            ccdl_die("model.c: model_kind_names does not list the kinds table");
    if (memchr(cfg->kind, 0, sizeof cfg->kind)) *kind = kind_named(cfg->kind);
    if (!*kind) {
        char known[128] = "";
        for (int i = 0; i < N_KINDS; i++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                     kinds[i]->name);
        return ccdl_fail(err, CCDL_ERR_INPUT, "model.kind: unknown kind \"%.*s\" (known: %s)",
                         (int)sizeof cfg->kind, cfg->kind, known);
    }
    if ((*kind)->check(cfg, err)) return -1;
    if (max_batch <= 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model: max_batch must be positive, got %d",
                         max_batch);
    if ((*kind)->tokens_runtime) return 0; /* no image shape, no classes */
    if (cfg->in_channels <= 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model.in_channels: must be positive, got %d",
                         cfg->in_channels);
    if (cfg->in_height <= 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model.in_height: must be positive, got %d",
                         cfg->in_height);
    if (cfg->in_width <= 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model.in_width: must be positive, got %d",
                         cfg->in_width);
    if ((int64_t)cfg->in_channels * cfg->in_height * cfg->in_width > INT_MAX / 64)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "model.in_channels x in_height x in_width: %d x %d x %d is too large",
                         cfg->in_channels, cfg->in_height, cfg->in_width);
    if (cfg->classes <= 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model.classes: must be positive, got %d",
                         cfg->classes);
    return 0;
}

model *model_create(const model_config *cfg, int max_batch, ccdl_error *err) {
    const model_kind *kind = NULL;
    if (config_check(cfg, max_batch, &kind, err)) return NULL;
    model *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    m->kind = kind;
    m->max_batch = max_batch;
    m->desc = kind->describe(&m->cfg, &m->tensors, &m->n_state);
    const model_tensor *last = &m->tensors.t[m->tensors.n - 1];
    m->n_params = last->offset + last->count;
    if (layer_env_init(&m->env, err)) goto fail;
    if (kind->tokens_runtime) {
        m->rt = kind->tokens_runtime(m->desc, &m->cfg, &m->env, &m->arena);
        return m;
    }
    m->train_sets = xcalloc((size_t)max_batch + 1, sizeof *m->train_sets);
    m->infer_sets = xcalloc((size_t)max_batch + 1, sizeof *m->infer_sets);
    m->threads = omp_get_max_threads();
    /* The evaluation set is made now so oneDNN problems surface here, with an error the
     * caller can report, instead of in the middle of training. No memory is touched until a
     * set first runs. */
    if (set_ensure(m, max_batch, 0, err)) goto fail;
    return m;
fail:
    model_destroy(&m);
    return NULL;
}

void model_destroy(model **mp) {
    if (!mp || !*mp) return;
    model *m = *mp;
    sets_clear(m);
    if (m->rt) m->kind->tokens_runtime_free(m->rt);
    free(m->train_sets);
    free(m->infer_sets);
    free(m->desc);
    free(m->tensors.t);
    layer_arena_free(&m->arena);
    layer_env_free(&m->env);
    free(m);
    *mp = NULL;
}

int model_prepare(model *m, int batch, int training, ccdl_error *err) {
    if (m->rt) return 0; /* token kinds make a set per batch shape when it first comes */
    return set_ensure(m, batch, training ? 1 : 0, err);
}

int model_kernels(model *m, int batch, int training,
                  void (*visit)(void *ctx, const char *what, const char *impl), void *ctx,
                  ccdl_error *err) {
    if (m->rt) return 0;
    if (set_ensure(m, batch, training, err)) return -1;
    layer_set_each_op(&(training ? m->train_sets : m->infer_sets)[batch]->ls, visit, ctx);
    return 0;
}

size_t model_param_count(const model *m) {
    return m->n_params;
}

size_t model_state_count(const model *m) {
    return m->n_state;
}

// ---------------------------------------------------------------------------- description

void model_init_params(const model *m, float *params, uint64_t seed) {
    m->kind->init_params(m->desc, &m->cfg, params, seed);
}

void model_init_state(const model *m, float *state) {
    if (m->kind->init_state) m->kind->init_state(m->desc, state);
}

void model_weight_decay_mask(const model *m, int exclude_bn, float *mask) {
    for (int i = 0; i < m->tensors.n; i++) {
        const model_tensor *t = &m->tensors.t[i];
        const int norm = t->role == TENSOR_NORM_SCALE || t->role == TENSOR_NORM_SHIFT;
        const float v = norm && exclude_bn ? 0.0f : 1.0f;
        for (size_t k = 0; k < t->count; k++) mask[t->offset + k] = v;
    }
}

double model_flops_per_sample(const model *m) {
    return m->kind->flops_per_sample(m->desc, &m->cfg);
}

// ---------------------------------------------------------------------------- running

int model_takes_tokens(const model *m) {
    return m->kind->tokens_runtime != NULL;
}

model_token_loss model_tokens_forward_backward(model *m, const float *params, float *grads,
                                               const model_tokens *b, uint64_t seed, int64_t step,
                                               int worker) {
    if (!m->rt) ccdl_die("model: %s does not read tokens", m->cfg.kind);
    return m->kind->tokens_forward_backward(m->rt, m->desc, &m->cfg, params, grads, b, seed, step,
                                            worker);
}

void model_tokens_evaluate(model *m, const float *params, const model_tokens *b,
                           model_token_loss *acc) {
    if (!m->rt) ccdl_die("model: %s does not read tokens", m->cfg.kind);
    m->kind->tokens_evaluate(m->rt, m->desc, &m->cfg, params, b, acc);
}

void model_tokens_greedy(model *m, const float *params, const model_tokens *b, int max_len,
                         int32_t *out) {
    if (!m->rt) ccdl_die("model: %s does not read tokens", m->cfg.kind);
    m->kind->tokens_greedy(m->rt, m->desc, &m->cfg, params, b, max_len, out);
}

float model_forward_backward(model *m, const float *params, float *state, float *grads,
                             const float *x, const int32_t *y, int batch) {
    if (m->n_state > 0 && !state) ccdl_die("model: %s needs a state buffer", m->cfg.kind);
    if (m->rt) ccdl_die("model: %s reads tokens, not images", m->cfg.kind);
    model_set *ms = set_get(m, batch, 1);
    layer_bind(ms->x, x);
    m->kind->forward(m->desc, ms, params, state);
    layer_wait(&ms->ls);
    double sum = softmax_xent(layer_data(ms->logits), y, batch, m->cfg.classes,
                              layer_data(ms->d_logits), NULL);
    m->kind->backward(m->desc, ms, params, grads);
    layer_wait(&ms->ls);
    return (float)(sum / batch);
}

void model_evaluate(model *m, const float *params, const float *state, const float *x,
                    const int32_t *y, int batch, double *loss_sum, int64_t *correct) {
    if (m->n_state > 0 && !state) ccdl_die("model: %s needs a state buffer", m->cfg.kind);
    if (m->rt) ccdl_die("model: %s reads tokens, not images", m->cfg.kind);
    model_set *ms = set_get(m, batch, 0);
    layer_bind(ms->x, x);
    /* inference sets only read state (bn_layer_forward_inference) */
    m->kind->forward(m->desc, ms, params, (float *)(uintptr_t)state);
    layer_wait(&ms->ls);
    *loss_sum += softmax_xent(layer_data(ms->logits), y, batch, m->cfg.classes, NULL, correct);
}

void model_declare_buffers(const model *m, worker_state *ws, uint64_t seed, model_buffers *h) {
    h->params =
        worker_state_declare(ws, "params", m->n_params, WS_GOSSIPED | WS_EVAL_MEAN | WS_CHECKPOINT);
    h->grads = worker_state_declare(ws, "grads", m->n_params, 0);
    h->state = worker_state_declare(ws, "bn_state", m->n_state, WS_EVAL_MEAN | WS_CHECKPOINT);
    for (int w = 0; w < ws->per_rank; w++) {
        model_init_params(m, worker_state_buffers(ws, h->params)[w], seed);
        if (m->n_state) model_init_state(m, worker_state_buffers(ws, h->state)[w]);
    }
}
