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

/* What a phase does after the local step (NOTES.md sections 5-6). */
typedef enum {
    POLICY_ALLREDUCE = 0, /* exact average */
    POLICY_GOSSIP,        /* one gossip round */
    POLICY_LOCAL,         /* one gossip round every local_steps steps, none in between */
    POLICY_CONTROLLED,    /* gossip rounds until the consensus distance meets the target */
    POLICY_COUNT
} comm_policy;
extern const char *const comm_policy_names[];

typedef enum { METRIC_EXACT = 0, METRIC_ESTIMATE } control_metric;
typedef enum { TARGET_CONSTANT = 0, TARGET_ADAPTIVE } control_target;
typedef enum { LR_SCALE_NONE = 0, LR_SCALE_LINEAR } lr_scaling;
typedef enum { SPLIT_IID = 0, SPLIT_DIRICHLET } data_split;
typedef enum { SCHEDULE_STEP = 0, SCHEDULE_COSINE, SCHEDULE_INVERSE_SQRT } schedule_kind;
typedef enum { OPTIMIZER_SGD = 0, OPTIMIZER_ADAM } optimizer_kind;

typedef struct {
    char name[128];
    int64_t seed;
    int workers; /* n */
    int threads; /* oneDNN threads per worker */

    struct {
        char dataset[32];     /* "fashion-mnist", "cifar10", "imagenet32" */
        char path[1024];      /* dataset directory ("": Debian's Fashion-MNIST) */
        int64_t train_subset; /* 0 = all; else use the first k training samples */
        int64_t test_subset;  /* 0 = all */
        int augment;          /* pad-4 random crop + horizontal flip */
        int split;            /* data_split */
        double dirichlet_alpha;
        /* dataset "text": sentence pairs (data/text.h) */
        char src_lang[8], tgt_lang[8]; /* file suffixes: train.en, train.de, ... */
        int tokens_per_batch;          /* padded tokens per worker batch */
        int max_len;                   /* training pairs longer than this are dropped (0: none) */
        int min_freq;                  /* vocabulary: tokens seen fewer times are <unk> */
        int lowercase;
    } data;

    model_config model; /* kind + hidden from the spec; input shape filled from the data */

    struct {
        int kind; /* optimizer_kind */
        double momentum;
        int nesterov;
        double weight_decay;
        int bn_weight_decay;      /* apply weight decay to batch-norm parameters too */
        double beta1, beta2, eps; /* adam */
        int gossip_moments;       /* mix the moment buffers with the parameters */
    } optimizer;

    struct {
        int kind; /* schedule_kind */
        int epochs;
        int local_batch;
        double lr;                        /* learning rate per base_batch samples */
        int scaling;                      /* lr_scaling */
        double base_batch;                /* linear scaling: lr * n * local_batch / base_batch */
        double warmup_epochs;             /* linear warm-up from lr to the scaled lr */
        double decay_at[SPEC_MAX_DECAYS]; /* fractions of training where lr is decayed */
        int n_decay;
        double decay_factor;
        int extra_epochs[SPEC_MAX_DECAYS + 1]; /* per phase: epochs appended at its end */
        int n_extra;
    } schedule;

    struct {
        int kind; /* topology_kind */
    } topology;

    struct spec_communication {
        int mode;      /* comm_policy of the decentralized phases */
        int dec_phase; /* 0: every phase uses mode; k: only phase k, the others all-reduce */
        int phases[SPEC_MAX_DECAYS + 1]; /* explicit comm_policy per phase (n_phases > 0) */
        int n_phases;
        int local_steps; /* H of the local policy */
        struct spec_control {
            int metric;    /* control_metric */
            int target;    /* control_target */
            double factor; /* target = factor x (reference max Xi of the phase | EMA of ||g||) */
            double value;  /* > 0: a literal constant target instead of the reference */
            char reference[1024]; /* trace of the same experiment uncontrolled */
            double ema;           /* adaptive: phi <- ema * phi + (1 - ema) * mean ||g_i|| */
            int max_rounds;       /* cap on gossip rounds per step */
        } control;
        struct spec_slowmo {
            int tau;      /* every tau steps: exact average, then the slow update (0: off) */
            double alpha; /* slow learning rate */
            double beta;  /* slow momentum */
        } slowmo;
    } communication;

    struct {
        char path[1024];
        int measure_xi; /* exact consensus distance every step (one all-reduce of d floats) */
    } trace;

    struct {
        char path[1024];      /* "": beside the trace (checkpoint_default_path) */
        int every_epochs;     /* at the end of every k-th epoch (0: never by epochs) */
        double every_minutes; /* at the first step boundary m minutes after the last (0: never) */
        int keep;             /* keep the last checkpoint after the run completes */
    } checkpoint;
} ccdl_spec;

/* Parse and validate JSON text; `source` names it in messages (usually the file path).
 * Returns 0, or -1 with err (CCDL_ERR_INPUT). */
int spec_parse(const char *json_text, const char *source, ccdl_spec *spec, ccdl_error *err);
int spec_load(const char *path, ccdl_spec *spec, ccdl_error *err);

/* The resolved spec (defaults filled in) as canonical JSON: sorted keys, compact.
 * Caller frees. Parsing it again gives the same spec. */
char *spec_canonical_json(const ccdl_spec *spec);

/* Compare two canonical spec JSON texts, ignoring the top-level "checkpoint" object (where
 * and how often to checkpoint does not change a run's results). Returns 0 if equal; else 1
 * with key set to the dotted path of the first differing key ("schedule.epochs"), or -1 if
 * either text is not a JSON object. */
int spec_json_first_difference(const char *a, const char *b, char *key, size_t cap);

/* Training epochs: schedule.epochs plus every phase's extra_epochs. */
static inline int spec_total_epochs(const ccdl_spec *s) {
    int total = s->schedule.epochs;
    for (int k = 0; k < s->schedule.n_extra; k++) total += s->schedule.extra_epochs[k];
    return total;
}

/* Number of learning-rate phases (decays + 1). */
static inline int spec_phase_count(const ccdl_spec *s) {
    return s->schedule.n_decay + 1;
}

/* The communication policy of phase k (from 1), resolving dec_phase and phases[]. */
comm_policy spec_phase_policy(const ccdl_spec *s, int phase);

/* True if a controlled phase reads its constant target from a reference trace. */
int spec_needs_reference(const ccdl_spec *s);

/* Print the documented key table (for docs and `ccdl spec-keys`). */
void spec_print_reference(void);

#endif
