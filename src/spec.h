/* spec.h: the parsed, validated experiment (docs/spec.md is the user's reference).
 *
 * A spec is read from JSON with jansson. Every key is described once, in a field table in
 * spec.c (type, range, choices, default, doc); the same table parses, validates, rejects
 * unknown keys and emits the canonical resolved spec that goes into the trace. Errors are
 * one line naming the file and the JSON path: `quick.json: topology.kind: expected one of
 * complete, ring; got "rng"`. */
#ifndef CCDL_SPEC_H
#define CCDL_SPEC_H

#include <stdint.h>

#include "model.h"
#include "util.h"

#define SPEC_MAX_DECAYS 8

typedef enum { COMM_ALLREDUCE = 0, COMM_GOSSIP } comm_mode;
typedef enum { LR_SCALE_NONE = 0, LR_SCALE_LINEAR } lr_scaling;

typedef struct {
    char name[128];
    int64_t seed;
    int workers; /* n */
    int threads; /* oneDNN threads per worker */

    struct {
        char dataset[32];     /* "fashion-mnist" */
        char path[1024];      /* directory holding the dataset files */
        int64_t train_subset; /* 0 = all; else use the first k training samples */
        int64_t test_subset;  /* 0 = all */
    } data;

    model_config model; /* kind + hidden from the spec; input shape filled from the data */

    struct {
        char kind[16]; /* "sgd" */
        double momentum;
        int nesterov;
        double weight_decay;
    } optimizer;

    struct {
        int epochs;
        int local_batch;
        double lr;                        /* learning rate per base_batch samples */
        int scaling;                      /* lr_scaling */
        double base_batch;                /* linear scaling: lr * n * local_batch / base_batch */
        double warmup_epochs;             /* linear warm-up from lr to the scaled lr */
        double decay_at[SPEC_MAX_DECAYS]; /* fractions of training where lr is decayed */
        int n_decay;
        double decay_factor;
    } schedule;

    struct {
        int kind; /* topology_kind */
    } topology;

    struct {
        int mode; /* comm_mode */
    } communication;

    struct {
        char path[1024];
        int measure_xi; /* exact consensus distance every step (one all-reduce of d floats) */
    } trace;
} ccdl_spec;

/* Parse and validate JSON text; `source` names it in messages (usually the file path).
 * Returns 0, or -1 with err (CCDL_ERR_INPUT). */
int spec_parse(const char *json_text, const char *source, ccdl_spec *spec, ccdl_error *err);
int spec_load(const char *path, ccdl_spec *spec, ccdl_error *err);

/* The resolved spec (defaults filled in) as canonical JSON: sorted keys, compact.
 * Caller frees. Parsing it again gives the same spec. */
char *spec_canonical_json(const ccdl_spec *spec);

/* Print the documented key table (for docs and `ccdl spec-keys`). */
void spec_print_reference(void);

#endif
