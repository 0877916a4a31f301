/* resnet.c: the "resnet20" kind: He et al. 2016's CIFAR ResNet-20 (see model.h).
 *
 * Activation memory plan:
 *   training:  every forward tensor the backward pass reads (conv outputs, BN outputs) has
 *              its own region; gradients of activations rotate through three slots, each
 *              the size of the largest activation (see resnet_set_memories).
 *   inference: batch norm runs in place and three slots rotate over the blocks.
 * The residual sum and its ReLU write into the second BN's output (one fused binary
 * primitive), so a block keeps four activations, not six.
 *
 * Leaves out: other depths (6n+2 would only change RESNET_BLOCKS_PER_STAGE), option-A
 * shortcuts, dropout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_kind.h"
#include "rng.h"

#define RESNET_STAGES 3
#define RESNET_BLOCKS_PER_STAGE 3
#define RESNET_BLOCKS (RESNET_STAGES * RESNET_BLOCKS_PER_STAGE)

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

/* The network: where each unit's tensors sit. */
typedef struct {
    unit_spec stem;
    block_spec blocks[RESNET_BLOCKS];
    int fc_in;     /* 4w */
    size_t fc_w;   // (classes, 4w)
    size_t fc_b;   // (classes)
    int fc_stream; /* init stream of the fc layer: the number of units */
} resnet_desc;

/* One primitive set's layers and activations (logits in model_set). */
typedef struct {
    /* under a forced activation layout: the input converted into it (x_act = x otherwise) */
    reorder_layer x_reorder;
    dnnl_memory_t x_act;
    unit_set stem;
    block_set blocks[RESNET_BLOCKS];
    pool_layer pool;
    ip_layer fc;
    dnnl_memory_t pooled, d_pooled; // (batch, 4w, 1, 1)
} resnet_layers;

/* Append a unit's tensors to the parameter list and the running state offset. */
static void unit_place(unit_spec *u, int c_in, int c_out, int k, int stride, int relu, int in_h,
                       int in_w, model_tensor_list *t, size_t *s_off, int *index,
                       const char *name) {
    u->c_in = c_in, u->c_out = c_out, u->k = k, u->stride = stride, u->relu = relu;
    u->pad = k / 2;
    u->out_h = (in_h + 2 * u->pad - k) / stride + 1;
    u->out_w = (in_w + 2 * u->pad - k) / stride + 1;
    const int64_t w_shape[4] = {c_out, c_in, k, k}, c_shape[1] = {c_out};
    char tname[64];
    snprintf(tname, sizeof tname, "%s.weight", name);
    u->w_off = model_tensor_add(t, tname, TENSOR_WEIGHT, 4, w_shape);
    snprintf(tname, sizeof tname, "%s.bn.scale", name);
    u->scale_off = model_tensor_add(t, tname, TENSOR_NORM_SCALE, 1, c_shape);
    snprintf(tname, sizeof tname, "%s.bn.shift", name);
    u->shift_off = model_tensor_add(t, tname, TENSOR_NORM_SHIFT, 1, c_shape);
    u->state_off = *s_off;
    *s_off += 2 * (size_t)c_out;
    u->index = (*index)++;
    snprintf(u->name, sizeof u->name, "%s", name);
}

/* Parameter order: stem (conv, BN scale, BN shift), then each block's conv1, BN1, conv2,
 * BN2, [shortcut conv, BN], then fc weights and bias. State: each BN's mean and variance in
 * the same order. */
static int resnet_check(const model_config *cfg, ccdl_error *err) {
    if (cfg->width < 0 || cfg->width > 1024)
        return ccdl_fail(err, CCDL_ERR_INPUT, "model.width: %d is outside 1..1024 (0 means 16)",
                         cfg->width);
    return 0;
}

static void *resnet_describe(const model_config *cfg, model_tensor_list *t, size_t *n_state) {
    resnet_desc *m = xcalloc(1, sizeof *m);
    const int w = cfg->width ? cfg->width : 16;
    size_t s = 0;
    int index = 0, h = cfg->in_height, wd = cfg->in_width;
    unit_place(&m->stem, cfg->in_channels, w, 3, 1, 1, h, wd, t, &s, &index, "stem.conv");
    h = m->stem.out_h, wd = m->stem.out_w;
    int c = w;
    for (int st = 0; st < RESNET_STAGES; st++) {
        for (int b = 0; b < RESNET_BLOCKS_PER_STAGE; b++) {
            block_spec *bs = &m->blocks[st * RESNET_BLOCKS_PER_STAGE + b];
            const int c_out = w << st, stride = (st > 0 && b == 0) ? 2 : 1;
            char name[40];
            snprintf(name, sizeof name, "s%db%d.conv1", st + 1, b);
            unit_place(&bs->conv1, c, c_out, 3, stride, 1, h, wd, t, &s, &index, name);
            snprintf(name, sizeof name, "s%db%d.conv2", st + 1, b);
            unit_place(&bs->conv2, c_out, c_out, 3, 1, 0, bs->conv1.out_h, bs->conv1.out_w, t, &s,
                       &index, name);
            bs->has_shortcut = stride != 1 || c != c_out;
            if (bs->has_shortcut) {
                snprintf(name, sizeof name, "s%db%d.shortcut", st + 1, b);
                unit_place(&bs->shortcut, c, c_out, 1, stride, 0, h, wd, t, &s, &index, name);
            }
            h = bs->conv1.out_h, wd = bs->conv1.out_w, c = c_out;
        }
    }
    m->fc_in = c;
    m->fc_stream = index;
    const int64_t w_shape[2] = {cfg->classes, c}, b_shape[1] = {cfg->classes};
    m->fc_w = model_tensor_add(t, "fc.weight", TENSOR_WEIGHT, 2, w_shape);
    m->fc_b = model_tensor_add(t, "fc.bias", TENSOR_BIAS, 1, b_shape);
    *n_state = s;
    return m;
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

static void resnet_init_params(const void *desc, const model_config *cfg, float *params,
                               uint64_t seed) {
    const resnet_desc *m = desc;
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
    const size_t n_w = (size_t)cfg->classes * m->fc_in;
    for (size_t i = 0; i < n_w; i++)
        params[m->fc_w + i] = (float)(bound * (2 * rng_uniform(&r) - 1));
    for (int c = 0; c < cfg->classes; c++)
        params[m->fc_b + c] = (float)(bound * (2 * rng_uniform(&r) - 1));
}

static void unit_init_state(const unit_spec *u, float *state) {
    for (int c = 0; c < u->c_out; c++) {
        state[u->state_off + c] = 0.0f;
        state[u->state_off + u->c_out + c] = 1.0f;
    }
}

static void resnet_init_state(const void *desc, float *state) {
    const resnet_desc *m = desc;
    unit_init_state(&m->stem, state);
    for (int j = 0; j < RESNET_BLOCKS; j++) {
        unit_init_state(&m->blocks[j].conv1, state);
        unit_init_state(&m->blocks[j].conv2, state);
        if (m->blocks[j].has_shortcut) unit_init_state(&m->blocks[j].shortcut, state);
    }
}

static double unit_macs(const unit_spec *u) {
    return (double)u->out_h * u->out_w * u->c_out * u->c_in * u->k * u->k;
}

static double resnet_flops(const void *desc, const model_config *cfg) {
    const resnet_desc *m = desc;
    double macs = 0;
    macs += unit_macs(&m->stem);
    for (int j = 0; j < RESNET_BLOCKS; j++) {
        macs += unit_macs(&m->blocks[j].conv1) + unit_macs(&m->blocks[j].conv2);
        if (m->blocks[j].has_shortcut) macs += unit_macs(&m->blocks[j].shortcut);
    }
    macs += (double)m->fc_in * cfg->classes;
    return 2 * macs;
}

// ---------------------------------------------------------------------------- building sets

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
static int resnet_set_memories(model_set *ms, ccdl_error *err) {
    resnet_layers *ns = ms->layers;
    layer_set *s = &ms->ls;
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
        if (MEM_NEW(ns->d_pooled, &ns->pool.dst_md) || MEM_NEW(ms->d_logits, &ns->fc.dst_md))
            return -1;
    }
    if (MEM_NEW(ns->pooled, &ns->pool.dst_md) || MEM_NEW(ms->logits, &ns->fc.dst_md)) return -1;
#undef MEM
#undef MEM_NEW
    return 0;
}

static int resnet_set_make(const void *desc, const model_config *cfg, model_set *ms,
                           ccdl_error *err) {
    const resnet_desc *m = desc;
    resnet_layers *ns = xcalloc(1, sizeof *ns);
    ms->layers = ns;
    layer_set *s = &ms->ls;
    const int64_t x_dims[4] = {s->batch, cfg->in_channels, cfg->in_height, cfg->in_width};
    dnnl_memory_desc_t x_md;
    if (layer_md_plain(&x_md, 4, x_dims, err) ||
        layer_set_memory(s, &ms->x, &x_md, SIZE_MAX, "input", err))
        return -1;
    ns->x_act = ms->x;
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
        ip_layer_init(&ns->fc, s, &ns->pool.dst_md, cfg->classes, 1, "fc", err))
        return -1;
    return resnet_set_memories(ms, err);
}

// ---------------------------------------------------------------------------- passes

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
static void resnet_forward(const void *desc, model_set *ms, const float *params, float *state) {
    const resnet_desc *m = desc;
    resnet_layers *ns = ms->layers;
    layer_set *s = &ms->ls;
    if (ns->x_reorder.op.prim) reorder_layer_forward(s, &ns->x_reorder, ms->x, ns->x_act);
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
    ip_layer_forward(s, &ns->fc, params + m->fc_w, params + m->fc_b, ns->pooled, ms->logits);
}

static void resnet_backward(const void *desc, model_set *ms, const float *params, float *grads) {
    const resnet_desc *m = desc;
    resnet_layers *ns = ms->layers;
    layer_set *s = &ms->ls;
    ip_layer_backward(s, &ns->fc, params + m->fc_w, grads + m->fc_w, grads + m->fc_b, ns->pooled,
                      ms->d_logits, ns->d_pooled);
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

const model_kind resnet20_kind = {
    .name = "resnet20",
    .layout_search = 1,
    .pad_images_to = 32,
    .check = resnet_check,
    .describe = resnet_describe,
    .init_params = resnet_init_params,
    .init_state = resnet_init_state,
    .flops_per_sample = resnet_flops,
    .set_make = resnet_set_make,
    .set_free = free,
    .forward = resnet_forward,
    .backward = resnet_backward,
};
