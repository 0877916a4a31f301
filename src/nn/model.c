/* model.c: the "mlp" and "resnet20" networks, composed from layers.c (see model.h).
 *
 * A model keeps the network's static description (shapes, and where each parameter tensor
 * and batch-norm state sits in the caller's flat buffers) and a cache of primitive sets, one
 * per (batch size, training or inference), made on first use. All sets share one activation
 * arena (layers.h), sized for the hungriest: the training set at the local batch and the
 * inference set at the evaluation batch never run at the same time.
 *
 * Activation memory plan for ResNet-20:
 *   training:  every forward tensor the backward pass reads (conv outputs, BN outputs) has
 *              its own region; gradients of activations rotate through three slots, each
 *              the size of the largest activation (see resnet_set_memories).
 *   inference: batch norm runs in place and three slots rotate over the blocks.
 * The residual sum and its ReLU write into the second BN's output (one fused binary
 * primitive), so a block keeps four activations, not six.
 *
 * Leaves out: other depths (6n+2 would only change RESNET_BLOCKS_PER_STAGE), option-A
 * shortcuts, dropout, and anything the optimizer does. */
#include "model.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "layers.h"
#include "rng.h"
#include "worker_state.h"

#define MODEL_MAX_LAYERS (MODEL_MAX_HIDDEN + 1) /* mlp inner-product layers */
#define RESNET_STAGES 3
#define RESNET_BLOCKS_PER_STAGE 3
#define RESNET_BLOCKS (RESNET_STAGES * RESNET_BLOCKS_PER_STAGE)
#define RESNET_UNITS (1 + 2 * RESNET_BLOCKS + (RESNET_STAGES - 1)) /* conv+BN units: 21 */

typedef enum { KIND_MLP, KIND_RESNET20 } model_kind;

// ---------------------------------------------------------------------------- static description

/* A conv + batch-norm unit of ResNet and where its tensors sit in the flat buffers. */
typedef struct {
    int c_in, c_out, k, stride, pad, relu; /* relu: BN fused with ReLU */
    int out_h, out_w;
    size_t w_off;     // (c_out, c_in, k, k) conv weights
    size_t scale_off; // (c_out) BN scale (gamma)
    size_t shift_off; // (c_out) BN shift (beta)
    size_t state_off; // (2, c_out) running mean, then running variance
    int index;        /* unit number in parameter order: the init stream */
    char name[40];    /* "s2b0.conv1", for messages */
} unit_spec;

typedef struct {
    unit_spec conv1, conv2;
    unit_spec shortcut; /* option B, only when the shape changes */
    int has_shortcut;
} block_spec;

// ---------------------------------------------------------------------------- primitive sets

/* A unit's primitives and activations. In inference sets z is y (BN in place). */
typedef struct {
    conv_layer conv;
    bn_layer bn;
    dnnl_memory_t y, z;   /* conv output, BN output */
    dnnl_memory_t dy, dz; /* training: their gradients (often the same memory: in place) */
} unit_set;

typedef struct {
    unit_set u1, u2, sc;
    add_layer add;       /* out = relu(u2.z + shortcut), written over u2.z */
    add_layer acc;       /* training: d_in += gradient through the shortcut */
    dnnl_memory_t d_out; /* training: gradient of the block output */
    dnnl_memory_t d_in;  /* training: gradient of the block input */
    dnnl_memory_t d_tmp; /* training with a shortcut conv: its input gradient */
} block_set;

typedef struct {
    layer_set ls;
    dnnl_memory_t x; /* the caller's batch, plain; bound per call */
    /* resnet20 under a forced activation layout: x converted into it (x_act = x otherwise) */
    reorder_layer x_reorder;
    dnnl_memory_t x_act;
    /* mlp: act[0] = x, act[l] hidden activations after ReLU, act[n_layers] logits */
    ip_layer ip[MODEL_MAX_LAYERS];
    relu_layer relu[MODEL_MAX_LAYERS];
    dnnl_memory_t act[MODEL_MAX_LAYERS + 1];  // (batch, dim[l])
    dnnl_memory_t dact[MODEL_MAX_LAYERS + 1]; // (batch, dim[l]), training, l >= 1
    /* resnet20 */
    unit_set stem;
    block_set blocks[RESNET_BLOCKS];
    pool_layer pool;
    ip_layer fc;
    dnnl_memory_t pooled, d_pooled; // (batch, 4w, 1, 1)
    dnnl_memory_t logits, d_logits; // (batch, classes) plain
} net_set;

struct model {
    model_config cfg;
    model_kind kind;
    size_t n_params, n_state;
    int max_batch;
    int threads; /* omp_get_max_threads() when the cached sets were made */

    /* mlp */
    int n_layers;                   /* inner-product layers = n_hidden + 1 */
    int dim[MODEL_MAX_LAYERS + 1];  /* dim[0] = C*H*W, dim[n_layers] = classes */
    size_t w_off[MODEL_MAX_LAYERS]; // (dim[l+1], dim[l]) weights of layer l
    size_t b_off[MODEL_MAX_LAYERS]; // (dim[l+1]) bias of layer l

    /* resnet20 */
    unit_spec stem;
    block_spec blocks[RESNET_BLOCKS];
    int fc_in;     /* 4w */
    size_t fc_w;   // (classes, 4w)
    size_t fc_b;   // (classes)
    int fc_stream; /* init stream of the fc layer: RESNET_UNITS */

    layer_env env;
    layer_arena arena;
    net_set **train_sets; /* [b] for batch b in 1..max_batch, made on first use */
    net_set **infer_sets;
};

// ---------------------------------------------------------------------------- layout

static void mlp_layout(model *m) {
    const model_config *cfg = &m->cfg;
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
    m->n_state = 0;
}

/* Append a unit's tensors to the running parameter / state offsets. */
static void unit_place(unit_spec *u, int c_in, int c_out, int k, int stride, int relu, int in_h,
                       int in_w, size_t *p_off, size_t *s_off, int *index, const char *name) {
    u->c_in = c_in, u->c_out = c_out, u->k = k, u->stride = stride, u->relu = relu;
    u->pad = k / 2;
    u->out_h = (in_h + 2 * u->pad - k) / stride + 1;
    u->out_w = (in_w + 2 * u->pad - k) / stride + 1;
    u->w_off = *p_off;
    *p_off += (size_t)c_out * c_in * k * k;
    u->scale_off = *p_off;
    *p_off += (size_t)c_out;
    u->shift_off = *p_off;
    *p_off += (size_t)c_out;
    u->state_off = *s_off;
    *s_off += 2 * (size_t)c_out;
    u->index = (*index)++;
    snprintf(u->name, sizeof u->name, "%s", name);
}

/* Parameter order: stem (conv, BN scale, BN shift), then each block's conv1, BN1, conv2,
 * BN2, [shortcut conv, BN], then fc weights and bias. State: each BN's mean and variance in
 * the same order. */
static void resnet_layout(model *m) {
    const int w = m->cfg.width;
    size_t p = 0, s = 0;
    int index = 0, h = m->cfg.in_height, wd = m->cfg.in_width;
    unit_place(&m->stem, m->cfg.in_channels, w, 3, 1, 1, h, wd, &p, &s, &index, "stem.conv");
    h = m->stem.out_h, wd = m->stem.out_w;
    int c = w;
    for (int st = 0; st < RESNET_STAGES; st++) {
        for (int b = 0; b < RESNET_BLOCKS_PER_STAGE; b++) {
            block_spec *bs = &m->blocks[st * RESNET_BLOCKS_PER_STAGE + b];
            const int c_out = w << st, stride = (st > 0 && b == 0) ? 2 : 1;
            char name[40];
            snprintf(name, sizeof name, "s%db%d.conv1", st + 1, b);
            unit_place(&bs->conv1, c, c_out, 3, stride, 1, h, wd, &p, &s, &index, name);
            snprintf(name, sizeof name, "s%db%d.conv2", st + 1, b);
            unit_place(&bs->conv2, c_out, c_out, 3, 1, 0, bs->conv1.out_h, bs->conv1.out_w, &p, &s,
                       &index, name);
            bs->has_shortcut = stride != 1 || c != c_out;
            if (bs->has_shortcut) {
                snprintf(name, sizeof name, "s%db%d.shortcut", st + 1, b);
                unit_place(&bs->shortcut, c, c_out, 1, stride, 0, h, wd, &p, &s, &index, name);
            }
            h = bs->conv1.out_h, wd = bs->conv1.out_w, c = c_out;
        }
    }
    m->fc_in = c;
    m->fc_stream = index;
    m->fc_w = p;
    p += (size_t)m->cfg.classes * c;
    m->fc_b = p;
    p += (size_t)m->cfg.classes;
    m->n_params = p;
    m->n_state = s;
}

// ---------------------------------------------------------------------------- building sets

static int mlp_set_make(const model *m, net_set *ns, ccdl_error *err) {
    layer_set *s = &ns->ls;
    const int64_t x_dims[2] = {s->batch, m->dim[0]};
    dnnl_memory_desc_t md;
    if (layer_md_plain(&md, 2, x_dims, err) ||
        layer_set_memory(s, &ns->x, &md, SIZE_MAX, "input", err))
        return -1;
    ns->act[0] = ns->x;
    for (int l = 0; l < m->n_layers; l++) {
        char name[16];
        snprintf(name, sizeof name, "fc%d", l);
        if (ip_layer_init(&ns->ip[l], s, &md, m->dim[l + 1], l > 0, name, err)) return -1;
        md = ns->ip[l].dst_md;
        if (layer_set_memory_new(s, &ns->act[l + 1], &md, name, err)) return -1;
        if (s->training && layer_set_memory_new(s, &ns->dact[l + 1], &md, name, err)) return -1;
        if (l < m->n_layers - 1 && relu_layer_init(&ns->relu[l], s, &md, name, err)) return -1;
    }
    ns->logits = ns->act[m->n_layers];
    ns->d_logits = ns->dact[m->n_layers];
    return 0;
}

static int unit_make(unit_set *u, layer_set *s, const unit_spec *spec,
                     const dnnl_memory_desc_t *src_md, int need_diff_src, ccdl_error *err) {
    if (conv_layer_init(&u->conv, s, src_md, spec->c_out, spec->k, spec->stride, spec->pad,
                        need_diff_src, spec->name, err))
        return -1;
    return bn_layer_init(&u->bn, s, &u->conv.dst_md, spec->relu, spec->name, err);
}

static size_t md_bytes(const dnnl_memory_desc_t *md) {
    return dnnl_memory_desc_get_size(md);
}

/* Activation memories once all layers exist (their layouts decide the sizes). */
static int resnet_set_memories(net_set *ns, ccdl_error *err) {
    layer_set *s = &ns->ls;
    block_set *B = ns->blocks;
    size_t most = md_bytes(&ns->stem.conv.dst_md);
    for (int j = 0; j < RESNET_BLOCKS; j++) {
        if (md_bytes(&B[j].u1.conv.dst_md) > most) most = md_bytes(&B[j].u1.conv.dst_md);
        if (md_bytes(&B[j].u2.conv.dst_md) > most) most = md_bytes(&B[j].u2.conv.dst_md);
    }
    size_t slot[3];
    for (int i = 0; i < 3; i++) slot[i] = layer_set_reserve(s, most);
#define MEM(mem, md, off) layer_set_memory(s, &(mem), (md), (off), "activation", err)
#define MEM_NEW(mem, md) layer_set_memory_new(s, &(mem), (md), "activation", err)
    if (!s->training) {
        /* Block j reads slot I, writes conv1 / shortcut to P and conv2 (then the block
         * output) to Q; the next block reads Q. BN runs in place. */
        int I = 0, P = 1, Q = 2;
        if (MEM(ns->stem.y, &ns->stem.conv.dst_md, slot[I])) return -1;
        ns->stem.z = ns->stem.y;
        for (int j = 0; j < RESNET_BLOCKS; j++) {
            if (MEM(B[j].u1.y, &B[j].u1.conv.dst_md, slot[P]) ||
                MEM(B[j].u2.y, &B[j].u2.conv.dst_md, slot[Q]))
                return -1;
            B[j].u1.z = B[j].u1.y;
            B[j].u2.z = B[j].u2.y;
            if (B[j].sc.conv.fwd.prim) {
                if (MEM(B[j].sc.y, &B[j].sc.conv.dst_md, slot[P])) return -1;
                B[j].sc.z = B[j].sc.y;
            }
            int next_p = I;
            I = Q, Q = P, P = next_p;
        }
    } else {
        /* Forward tensors the backward pass reads get their own regions. */
        if (MEM_NEW(ns->stem.y, &ns->stem.conv.dst_md) ||
            MEM_NEW(ns->stem.z, &ns->stem.conv.dst_md))
            return -1;
        for (int j = 0; j < RESNET_BLOCKS; j++) {
            unit_set *us[3] = {&B[j].u1, &B[j].u2, B[j].sc.conv.fwd.prim ? &B[j].sc : NULL};
            for (int k = 0; k < 3; k++)
                if (us[k] && (MEM_NEW(us[k]->y, &us[k]->conv.dst_md) ||
                              MEM_NEW(us[k]->z, &us[k]->conv.dst_md)))
                    return -1;
        }
        /* Gradients, block j counted from the end (r = 8 - j): the incoming d_out sits in
         * slot G, u2's input gradient in X, u1's (BN in place) in Y, then d_in overwrites X
         * (u2.dy is dead by then) and the shortcut conv's input gradient takes Y. The next
         * block down finds its d_out in that X: G' = X. */
        for (int j = RESNET_BLOCKS - 1; j >= 0; j--) {
            const int r = RESNET_BLOCKS - 1 - j, G = r % 3, X = (r + 1) % 3, Y = (r + 2) % 3;
            const dnnl_memory_desc_t *in_md =
                j > 0 ? &B[j - 1].u2.conv.dst_md : &ns->stem.conv.dst_md;
            if (MEM(B[j].d_out, &B[j].u2.conv.dst_md, slot[G]) ||
                MEM(B[j].u2.dy, &B[j].u2.conv.dst_md, slot[X]) ||
                MEM(B[j].u1.dz, &B[j].u1.conv.dst_md, slot[Y]) || MEM(B[j].d_in, in_md, slot[X]))
                return -1;
            B[j].u2.dz = B[j].d_out;
            B[j].u1.dy = B[j].u1.dz;
            if (B[j].sc.conv.fwd.prim) {
                B[j].sc.dz = B[j].sc.dy = B[j].d_out; /* shortcut BN backward in place */
                if (MEM(B[j].d_tmp, in_md, slot[Y])) return -1;
            }
        }
        ns->stem.dz = ns->stem.dy = B[0].d_in;
        if (MEM_NEW(ns->d_pooled, &ns->pool.dst_md) || MEM_NEW(ns->d_logits, &ns->fc.dst_md))
            return -1;
    }
    if (MEM_NEW(ns->pooled, &ns->pool.dst_md) || MEM_NEW(ns->logits, &ns->fc.dst_md)) return -1;
#undef MEM
#undef MEM_NEW
    return 0;
}

static int resnet_set_make(const model *m, net_set *ns, ccdl_error *err) {
    layer_set *s = &ns->ls;
    const int64_t x_dims[4] = {s->batch, m->cfg.in_channels, m->cfg.in_height, m->cfg.in_width};
    dnnl_memory_desc_t x_md;
    if (layer_md_plain(&x_md, 4, x_dims, err) ||
        layer_set_memory(s, &ns->x, &x_md, SIZE_MAX, "input", err))
        return -1;
    ns->x_act = ns->x;
    if (s->act_tag != dnnl_format_tag_any && s->act_tag != dnnl_nchw) {
        /* a forced layout starts at the input: the stem's kernels for a plain input may be
         * the reference ones even where the rest of the network has jit kernels */
        const dnnl_memory_desc_t plain_md = x_md;
        if (layer_md_act(s, &x_md, x_dims, err) ||
            layer_set_memory_new(s, &ns->x_act, &x_md, "input", err) ||
            reorder_layer_init(&ns->x_reorder, s, &plain_md, &x_md, "input", err))
            return -1;
    }
    if (unit_make(&ns->stem, s, &m->stem, &x_md, 0, err)) return -1;
    const dnnl_memory_desc_t *in_md = &ns->stem.conv.dst_md;
    for (int j = 0; j < RESNET_BLOCKS; j++) {
        const block_spec *bs = &m->blocks[j];
        block_set *B = &ns->blocks[j];
        char name[32];
        if (unit_make(&B->u1, s, &bs->conv1, in_md, 1, err) ||
            unit_make(&B->u2, s, &bs->conv2, &B->u1.conv.dst_md, 1, err))
            return -1;
        if (bs->has_shortcut && unit_make(&B->sc, s, &bs->shortcut, in_md, 1, err)) return -1;
        snprintf(name, sizeof name, "s%db%d.add", j / RESNET_BLOCKS_PER_STAGE + 1,
                 j % RESNET_BLOCKS_PER_STAGE);
        /* The identity shortcut may come in another layout than the main path chose (at
         * widths that are not a multiple of 16); the add reads each as it is. */
        const dnnl_memory_desc_t *out_md = &B->u2.conv.dst_md;
        const dnnl_memory_desc_t *sc_md = bs->has_shortcut ? &B->sc.conv.dst_md : in_md;
        if (add_layer_init(&B->add, s, out_md, sc_md, 1, name, err)) return -1;
        if (s->training &&
            add_layer_init(&B->acc, s, in_md, bs->has_shortcut ? NULL : out_md, 0, name, err))
            return -1;
        in_md = &B->u2.conv.dst_md;
    }
    if (pool_layer_init(&ns->pool, s, in_md, POOL_AVG, 0, 1, 0, "pool", err) ||
        ip_layer_init(&ns->fc, s, &ns->pool.dst_md, m->cfg.classes, 1, "fc", err))
        return -1;
    return resnet_set_memories(ns, err);
}

static void net_set_destroy(net_set *ns) {
    if (!ns) return;
    layer_set_destroy(&ns->ls);
    free(ns);
}

static net_set *net_set_try(model *m, int batch, int training, dnnl_format_tag_t act_tag,
                            ccdl_error *err) {
    net_set *ns = xcalloc(1, sizeof *ns);
    layer_set_init(&ns->ls, &m->env, batch, training);
    ns->ls.act_tag = act_tag;
    int rc = m->kind == KIND_MLP ? mlp_set_make(m, ns, err) : resnet_set_make(m, ns, err);
    if (rc == 0) rc = layer_set_finish(&ns->ls, err);
    if (rc) {
        net_set_destroy(ns);
        return NULL;
    }
    return ns;
}

/* oneDNN's layout choice under "any" can land on its reference convolution (10-20x slower):
 * at ResNet widths that are not a multiple of 16 on AVX-512 it picks nhwc with a destination
 * "any", which its jit kernels decline. Then try the activation layouts in turn and keep the
 * first set without reference kernels (or the one with the fewest). Deterministic for a
 * machine: the same ISA makes the same choices. Widths where "any" is clean keep it, and
 * with it their bits. */
static net_set *net_set_create(model *m, int batch, int training, ccdl_error *err) {
    static const dnnl_format_tag_t layouts[] = {dnnl_format_tag_any, dnnl_nhwc, dnnl_nChw8c,
                                                dnnl_nChw16c, dnnl_nchw};
    const int n_layouts = m->kind == KIND_MLP ? 1 : (int)(sizeof layouts / sizeof *layouts);
    int best = 0, best_refs = -1;
    for (int i = 0; i < n_layouts; i++) {
        net_set *ns = net_set_try(m, batch, training, layouts[i], err);
        if (!ns) {
            if (i == 0) return NULL; /* a real failure, not a layout preference */
            continue;
        }
        const int refs = layer_set_reference(&ns->ls);
        if (refs == 0) return ns;
        if (best_refs < 0 || refs < best_refs) best = i, best_refs = refs;
        net_set_destroy(ns);
    }
    return net_set_try(m, batch, training, layouts[best], err);
}

static void sets_clear(model *m) {
    for (int b = 0; b <= m->max_batch; b++) {
        if (m->train_sets) {
            net_set_destroy(m->train_sets[b]);
            m->train_sets[b] = NULL;
        }
        if (m->infer_sets) {
            net_set_destroy(m->infer_sets[b]);
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
    net_set **sets = training ? m->train_sets : m->infer_sets;
    if (!sets[batch]) sets[batch] = net_set_create(m, batch, training, err);
    return sets[batch] ? 0 : -1;
}

/* The cached set, bound to the arena; failures here are fatal (see model_prepare). */
static net_set *set_get(model *m, int batch, int training) {
    ccdl_error err = {0};
    if (set_ensure(m, batch, training, &err)) ccdl_die("%s", err.text);
    net_set *ns = (training ? m->train_sets : m->infer_sets)[batch];
    layer_set_bind(&ns->ls, &m->arena);
    return ns;
}

// ---------------------------------------------------------------------------- create, destroy

static int config_check(const model_config *cfg, int max_batch, model_kind *kind, ccdl_error *err) {
    if (strncmp(cfg->kind, "mlp", sizeof cfg->kind) == 0)
        *kind = KIND_MLP;
    else if (strncmp(cfg->kind, "resnet20", sizeof cfg->kind) == 0)
        *kind = KIND_RESNET20;
    else
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "model.kind: unknown kind \"%.*s\" (known: mlp, resnet20)",
                         (int)sizeof cfg->kind, cfg->kind);
    if (*kind == KIND_MLP) {
        if (cfg->n_hidden < 0 || cfg->n_hidden > MODEL_MAX_HIDDEN)
            return ccdl_fail(err, CCDL_ERR_INPUT, "model.n_hidden: %d is outside 0..%d",
                             cfg->n_hidden, MODEL_MAX_HIDDEN);
        for (int i = 0; i < cfg->n_hidden; i++)
            if (cfg->hidden[i] <= 0)
                return ccdl_fail(err, CCDL_ERR_INPUT,
                                 "model.hidden[%d]: width must be positive, got %d", i,
                                 cfg->hidden[i]);
    } else if (cfg->width < 0 || cfg->width > 1024) {
        return ccdl_fail(err, CCDL_ERR_INPUT, "model.width: %d is outside 1..1024 (0 means 16)",
                         cfg->width);
    }
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
    if (max_batch <= 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model: max_batch must be positive, got %d",
                         max_batch);
    return 0;
}

model *model_create(const model_config *cfg, int max_batch, ccdl_error *err) {
    model_kind kind = KIND_MLP;
    if (config_check(cfg, max_batch, &kind, err)) return NULL;
    model *m = xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    m->kind = kind;
    m->max_batch = max_batch;
    if (kind == KIND_MLP) {
        mlp_layout(m);
    } else {
        if (m->cfg.width == 0) m->cfg.width = 16;
        resnet_layout(m);
    }
    if (layer_env_init(&m->env, err)) goto fail;
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
    free(m->train_sets);
    free(m->infer_sets);
    layer_arena_free(&m->arena);
    layer_env_free(&m->env);
    free(m);
    *mp = NULL;
}

int model_prepare(model *m, int batch, int training, ccdl_error *err) {
    return set_ensure(m, batch, training ? 1 : 0, err);
}

int model_kernels(model *m, int batch, int training,
                  void (*visit)(void *ctx, const char *what, const char *impl), void *ctx,
                  ccdl_error *err) {
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

// ---------------------------------------------------------------------------- initialisation

static void normal_fill(float *v, size_t n, double std, rng_t *r) {
    for (size_t i = 0; i < n; i++) v[i] = (float)(std * rng_normal(r));
}

static void unit_init_params(const unit_spec *u, float *params, uint64_t seed) {
    rng_t r;
    rng_seed(&r, seed, RNG_INIT, (uint64_t)u->index, 0);
    /* He et al. 2015, fan_out = C_out k k (torchvision's kaiming_normal_(mode="fan_out")) */
    normal_fill(params + u->w_off, (size_t)u->c_out * u->c_in * u->k * u->k,
                sqrt(2.0 / ((double)u->c_out * u->k * u->k)), &r);
    for (int c = 0; c < u->c_out; c++) {
        params[u->scale_off + c] = 1.0f;
        params[u->shift_off + c] = 0.0f;
    }
}

void model_init_params(const model *m, float *params, uint64_t seed) {
    if (m->kind == KIND_MLP) {
        for (int l = 0; l < m->n_layers; l++) {
            /* One stream per layer: layer l's values depend on (seed, l) only. */
            rng_t r;
            rng_seed(&r, seed, RNG_INIT, (uint64_t)l, 0);
            normal_fill(params + m->w_off[l], (size_t)m->dim[l + 1] * (size_t)m->dim[l],
                        sqrt(2.0 / m->dim[l]), &r); /* He et al. 2015, fan_in, for ReLU */
            memset(params + m->b_off[l], 0, (size_t)m->dim[l + 1] * sizeof(float));
        }
        return;
    }
    unit_init_params(&m->stem, params, seed);
    for (int j = 0; j < RESNET_BLOCKS; j++) {
        unit_init_params(&m->blocks[j].conv1, params, seed);
        unit_init_params(&m->blocks[j].conv2, params, seed);
        if (m->blocks[j].has_shortcut) unit_init_params(&m->blocks[j].shortcut, params, seed);
    }
    /* PyTorch's nn.Linear default: weights and bias uniform in +-1/sqrt(fan_in) */
    rng_t r;
    rng_seed(&r, seed, RNG_INIT, (uint64_t)m->fc_stream, 0);
    const double bound = 1.0 / sqrt((double)m->fc_in);
    const size_t n_w = (size_t)m->cfg.classes * m->fc_in;
    for (size_t i = 0; i < n_w; i++)
        params[m->fc_w + i] = (float)(bound * (2 * rng_uniform(&r) - 1));
    for (int c = 0; c < m->cfg.classes; c++)
        params[m->fc_b + c] = (float)(bound * (2 * rng_uniform(&r) - 1));
}

static void unit_init_state(const unit_spec *u, float *state) {
    for (int c = 0; c < u->c_out; c++) {
        state[u->state_off + c] = 0.0f;
        state[u->state_off + u->c_out + c] = 1.0f;
    }
}

void model_init_state(const model *m, float *state) {
    if (m->kind == KIND_MLP) return;
    unit_init_state(&m->stem, state);
    for (int j = 0; j < RESNET_BLOCKS; j++) {
        unit_init_state(&m->blocks[j].conv1, state);
        unit_init_state(&m->blocks[j].conv2, state);
        if (m->blocks[j].has_shortcut) unit_init_state(&m->blocks[j].shortcut, state);
    }
}

static void unit_mask(const unit_spec *u, int exclude_bn, float *mask) {
    const float v = exclude_bn ? 0.0f : 1.0f;
    for (int c = 0; c < u->c_out; c++) mask[u->scale_off + c] = mask[u->shift_off + c] = v;
}

void model_weight_decay_mask(const model *m, int exclude_bn, float *mask) {
    for (size_t k = 0; k < m->n_params; k++) mask[k] = 1.0f;
    if (m->kind == KIND_MLP) return;
    unit_mask(&m->stem, exclude_bn, mask);
    for (int j = 0; j < RESNET_BLOCKS; j++) {
        unit_mask(&m->blocks[j].conv1, exclude_bn, mask);
        unit_mask(&m->blocks[j].conv2, exclude_bn, mask);
        if (m->blocks[j].has_shortcut) unit_mask(&m->blocks[j].shortcut, exclude_bn, mask);
    }
}

static double unit_macs(const unit_spec *u) {
    return (double)u->out_h * u->out_w * u->c_out * u->c_in * u->k * u->k;
}

double model_flops_per_sample(const model *m) {
    double macs = 0;
    if (m->kind == KIND_MLP) {
        for (int l = 0; l < m->n_layers; l++) macs += (double)m->dim[l] * m->dim[l + 1];
        return 2 * macs;
    }
    macs += unit_macs(&m->stem);
    for (int j = 0; j < RESNET_BLOCKS; j++) {
        macs += unit_macs(&m->blocks[j].conv1) + unit_macs(&m->blocks[j].conv2);
        if (m->blocks[j].has_shortcut) macs += unit_macs(&m->blocks[j].shortcut);
    }
    macs += (double)m->fc_in * m->cfg.classes;
    return 2 * macs;
}

// ---------------------------------------------------------------------------- mlp passes

static void mlp_forward(model *m, net_set *ns, const float *params) {
    layer_set *s = &ns->ls;
    for (int l = 0; l < m->n_layers; l++) {
        ip_layer_forward(s, &ns->ip[l], params + m->w_off[l], params + m->b_off[l], ns->act[l],
                         ns->act[l + 1]);
        if (l < m->n_layers - 1) relu_layer_forward(s, &ns->relu[l], ns->act[l + 1]);
    }
}

static void mlp_backward(model *m, net_set *ns, const float *params, float *grads) {
    layer_set *s = &ns->ls;
    for (int l = m->n_layers - 1; l >= 0; l--) {
        ip_layer_backward(s, &ns->ip[l], params + m->w_off[l], grads + m->w_off[l],
                          grads + m->b_off[l], ns->act[l], ns->dact[l + 1],
                          l > 0 ? ns->dact[l] : NULL);
        /* act[l] is the output of layer l-1's ReLU: gate its gradient in place */
        if (l > 0) relu_layer_backward(s, &ns->relu[l - 1], ns->act[l], ns->dact[l]);
    }
}

// ---------------------------------------------------------------------------- resnet passes

static void unit_forward(layer_set *s, unit_set *u, const unit_spec *spec, const float *params,
                         float *state, dnnl_memory_t src) {
    conv_layer_forward(s, &u->conv, params + spec->w_off, src, u->y);
    if (s->training)
        bn_layer_forward_training(s, &u->bn, params + spec->scale_off, params + spec->shift_off,
                                  state + spec->state_off, u->y, u->z);
    else
        bn_layer_forward_inference(s, &u->bn, params + spec->scale_off, params + spec->shift_off,
                                   state + spec->state_off, u->y, u->z);
}

/* d_src NULL: no input gradient (the stem). */
static void unit_backward(layer_set *s, unit_set *u, const unit_spec *spec, const float *params,
                          float *grads, dnnl_memory_t src, dnnl_memory_t d_src) {
    bn_layer_backward(s, &u->bn, params + spec->scale_off, params + spec->shift_off,
                      grads + spec->scale_off, grads + spec->shift_off, u->y, u->dz, u->dy);
    conv_layer_backward(s, &u->conv, params + spec->w_off, grads + spec->w_off, src, u->dy, d_src);
}

/* state is only written in training sets. */
static void resnet_forward(model *m, net_set *ns, const float *params, float *state) {
    layer_set *s = &ns->ls;
    if (ns->x_reorder.op.prim) reorder_layer_forward(s, &ns->x_reorder, ns->x, ns->x_act);
    unit_forward(s, &ns->stem, &m->stem, params, state, ns->x_act);
    dnnl_memory_t in = ns->stem.z;
    for (int j = 0; j < RESNET_BLOCKS; j++) {
        const block_spec *bs = &m->blocks[j];
        block_set *B = &ns->blocks[j];
        unit_forward(s, &B->u1, &bs->conv1, params, state, in);
        unit_forward(s, &B->u2, &bs->conv2, params, state, B->u1.z);
        dnnl_memory_t shortcut = in;
        if (bs->has_shortcut) {
            unit_forward(s, &B->sc, &bs->shortcut, params, state, in);
            shortcut = B->sc.z;
        }
        add_layer_forward(s, &B->add, B->u2.z, shortcut);
        in = B->u2.z;
    }
    pool_layer_forward(s, &ns->pool, in, ns->pooled);
    ip_layer_forward(s, &ns->fc, params + m->fc_w, params + m->fc_b, ns->pooled, ns->logits);
}

static void resnet_backward(model *m, net_set *ns, const float *params, float *grads) {
    layer_set *s = &ns->ls;
    ip_layer_backward(s, &ns->fc, params + m->fc_w, grads + m->fc_w, grads + m->fc_b, ns->pooled,
                      ns->d_logits, ns->d_pooled);
    pool_layer_backward(s, &ns->pool, ns->d_pooled, ns->blocks[RESNET_BLOCKS - 1].d_out);
    for (int j = RESNET_BLOCKS - 1; j >= 0; j--) {
        const block_spec *bs = &m->blocks[j];
        block_set *B = &ns->blocks[j];
        dnnl_memory_t in = j > 0 ? ns->blocks[j - 1].u2.z : ns->stem.z;
        add_layer_backward(s, &B->add, B->u2.z, B->d_out);
        unit_backward(s, &B->u2, &bs->conv2, params, grads, B->u1.z, B->u1.dz);
        unit_backward(s, &B->u1, &bs->conv1, params, grads, in, B->d_in);
        if (bs->has_shortcut) {
            unit_backward(s, &B->sc, &bs->shortcut, params, grads, in, B->d_tmp);
            add_layer_forward(s, &B->acc, B->d_in, B->d_tmp);
        } else {
            add_layer_forward(s, &B->acc, B->d_in, B->d_out);
        }
    }
    unit_backward(s, &ns->stem, &m->stem, params, grads, ns->x_act, NULL);
}

// ---------------------------------------------------------------------------- running

float model_forward_backward(model *m, const float *params, float *state, float *grads,
                             const float *x, const int32_t *y, int batch) {
    if (m->n_state > 0 && !state) ccdl_die("model: %s needs a state buffer", m->cfg.kind);
    net_set *ns = set_get(m, batch, 1);
    layer_bind(ns->x, x);
    if (m->kind == KIND_MLP)
        mlp_forward(m, ns, params);
    else
        resnet_forward(m, ns, params, state);
    layer_wait(&ns->ls);
    double sum = softmax_xent(layer_data(ns->logits), y, batch, m->cfg.classes,
                              layer_data(ns->d_logits), NULL);
    if (m->kind == KIND_MLP)
        mlp_backward(m, ns, params, grads);
    else
        resnet_backward(m, ns, params, grads);
    layer_wait(&ns->ls);
    return (float)(sum / batch);
}

void model_evaluate(model *m, const float *params, const float *state, const float *x,
                    const int32_t *y, int batch, double *loss_sum, int64_t *correct) {
    if (m->n_state > 0 && !state) ccdl_die("model: %s needs a state buffer", m->cfg.kind);
    net_set *ns = set_get(m, batch, 0);
    layer_bind(ns->x, x);
    if (m->kind == KIND_MLP)
        mlp_forward(m, ns, params);
    else /* inference sets only read state (bn_layer_forward_inference) */
        resnet_forward(m, ns, params, (float *)(uintptr_t)state);
    layer_wait(&ns->ls);
    *loss_sum += softmax_xent(layer_data(ns->logits), y, batch, m->cfg.classes, NULL, correct);
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
