/* model_kind.h: what one kind of network provides to model.c (internal to src/nn/).
 *
 * A kind is one module exporting one model_kind table (mlp.c, resnet.c); model.c lists the
 * tables and does everything the kinds share: config checks common to all, the primitive-set
 * cache, the activation arena, the layout fallback, the loss, the weight-decay mask from the
 * tensor roles, the worker buffers. A new kind is one new module and one entry in model.c's
 * list.
 *
 * A kind keeps two things of its own: its static description (`desc`: shapes and where each
 * tensor sits in the flat buffers, made once per model by describe) and, per primitive set,
 * its layers and activations (`model_set.layers`, made by set_make). */
#ifndef CCDL_MODEL_KIND_H
#define CCDL_MODEL_KIND_H

#include <stddef.h>
#include <stdint.h>

#include "layers.h"
#include "model.h"

/* The parameter tensors of a model, in buffer order. */
typedef struct {
    model_tensor *t;
    int n, cap;
} model_tensor_list;

/* Append a tensor at the end of the flat buffer; returns its offset. */
size_t model_tensor_add(model_tensor_list *l, const char *name, tensor_role role, int ndims,
                        const int64_t *shape);

/* One primitive set (batch size, training or inference): the parts every kind has, and the
 * kind's own layers. */
typedef struct {
    layer_set ls;
    dnnl_memory_t x;                /* the caller's batch, plain; bound per call */
    dnnl_memory_t logits, d_logits; /* (batch, classes), plain; d_logits in training sets */
    void *layers;                   /* the kind's primitives and activations */
} model_set;

typedef struct {
    const char *name; /* model.kind in the spec */
    /* 1: 4-D activations whose layout model.c may force when oneDNN's own choice lands on a
     * reference kernel (see net_set_create in model.c) */
    int layout_search;
    /* images smaller than this are zero-padded to it (ResNet-20 is CIFAR's: 32); 0: none */
    int pad_images_to;
    /* Checks of the kind's own config fields (the input shape and classes are checked by
     * model.c): -1 + err (CCDL_ERR_INPUT naming the spec key). */
    int (*check)(const model_config *cfg, ccdl_error *err);
    /* The static description: appends the parameter tensors in buffer order, sets the
     * state floats (0: none), returns the desc (freed with free()). */
    void *(*describe)(const model_config *cfg, model_tensor_list *tensors, size_t *n_state);
    /* Initial parameters and state: pure functions of seed (docs/model.md). init_state may
     * be NULL when there is no state. */
    void (*init_params)(const void *desc, const model_config *cfg, float *params, uint64_t seed);
    void (*init_state)(const void *desc, float *state);
    double (*flops_per_sample)(const void *desc, const model_config *cfg);
    /* Make the set's layers (ms->ls is initialised, with its act_tag): ms->x, ms->logits and
     * (training) ms->d_logits must be set. */
    int (*set_make)(const void *desc, const model_config *cfg, model_set *ms, ccdl_error *err);
    void (*set_free)(void *layers); /* frees what set_make allocated; NULL-safe */
    /* Queue the passes (the caller waits). forward writes ms->logits; training sets update
     * state (batch statistics), inference sets only read it. backward reads ms->d_logits and
     * overwrites grads. */
    void (*forward)(const void *desc, model_set *ms, const float *params, float *state);
    void (*backward)(const void *desc, model_set *ms, const float *params, float *grads);

    /* Token kinds (set_make, forward, backward NULL; layout_search 0): their own primitive
     * sets per batch shape, made on first use inside `rt`, over the model's env and arena.
     * The meaning of each call is model.h's model_tokens_*. */
    void *(*tokens_runtime)(const void *desc, const model_config *cfg, layer_env *env,
                            layer_arena *arena);
    void (*tokens_runtime_free)(void *rt);
    model_token_loss (*tokens_forward_backward)(void *rt, const void *desc, const model_config *cfg,
                                                const float *params, float *grads,
                                                const model_tokens *b, uint64_t seed, int64_t step,
                                                int worker);
    void (*tokens_evaluate)(void *rt, const void *desc, const model_config *cfg,
                            const float *params, const model_tokens *b, model_token_loss *acc);
    void (*tokens_greedy)(void *rt, const void *desc, const model_config *cfg, const float *params,
                          const model_tokens *b, int max_len, int32_t *out);
} model_kind;

extern const model_kind mlp_kind;
extern const model_kind resnet20_kind;
extern const model_kind transformer_kind;

#endif
