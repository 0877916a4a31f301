/* spec.c: experiment specs from JSON (jansson), validated against one field table.
 *
 * Each object in a spec has a table of fields (key, type, place in ccdl_spec, range or
 * choices, doc). Parsing walks the JSON object against its table: unknown keys, wrong
 * types and values out of range are errors naming the JSON path; the same tables emit the
 * canonical resolved spec and the key reference in docs/spec.md. Defaults live in
 * spec_set_defaults(), in one place. */
#include "spec.h"

#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "topology.h"

/* ---------------------------------------------------------------- field tables */

typedef enum {
    F_INT,     /* int */
    F_INT64,   /* int64_t */
    F_DOUBLE,  /* double */
    F_BOOL,    /* int 0/1 */
    F_STRING,  /* char[size]; optional choices */
    F_CHOICE,  /* int index into choices */
    F_DOUBLES, /* double[size], count in an int at count_offset */
    F_INTS,    /* int[size], count in an int at count_offset */
    F_CHOICES, /* int[size] of indices into choices, count in an int at count_offset */
    F_OBJECT   /* nested object with its own table */
} field_type;

typedef struct field {
    const char *key;
    field_type type;
    size_t offset; /* into ccdl_spec */
    size_t size;   /* F_STRING: capacity; F_DOUBLES/F_INTS: max count */
    size_t count_offset;
    double min, max; /* inclusive numeric range (for lists: of each element) */
    const char *const *choices;
    const struct field *sub;
    const char *doc;
    /* 1: a key added after traces existed: emitted in the canonical spec only when it is not
     * the default, so runs that leave it alone keep the canonical spec (and the identity:
     * resume, reference runs, sweeps) they had before it existed */
    int later;
} field;

#define FIELD_END                                                                                  \
    { NULL, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, 0 }
#define OFF(member) offsetof(ccdl_spec, member)
#define SIZE(member) sizeof(((ccdl_spec *)0)->member)
#define NUM(key, type, member, lo, hi, doc)                                                        \
    { key, type, OFF(member), 0, 0, lo, hi, NULL, NULL, doc, 0 }
#define STR(key, member, choices, doc)                                                             \
    { key, F_STRING, OFF(member), SIZE(member), 0, 0, 0, choices, NULL, doc, 0 }
#define LATER_NUM(key, type, member, lo, hi, doc)                                                  \
    { key, type, OFF(member), 0, 0, lo, hi, NULL, NULL, doc, 1 }
#define LATER_STR(key, member, doc)                                                                \
    { key, F_STRING, OFF(member), SIZE(member), 0, 0, 0, NULL, NULL, doc, 1 }
#define CHOICE(key, member, choices, doc)                                                          \
    { key, F_CHOICE, OFF(member), 0, 0, 0, 0, choices, NULL, doc, 0 }
#define LIST(key, type, member, count, lo, hi, doc)                                                \
    {                                                                                              \
        key, type, OFF(member), SIZE(member) / sizeof(((ccdl_spec *)0)->member[0]), OFF(count),    \
            lo, hi, NULL, NULL, doc, 0                                                             \
    }
#define LATER_LIST(key, type, member, count, lo, hi, doc)                                          \
    {                                                                                              \
        key, type, OFF(member), SIZE(member) / sizeof(((ccdl_spec *)0)->member[0]), OFF(count),    \
            lo, hi, NULL, NULL, doc, 1                                                             \
    }
#define OBJECT(key, table, doc)                                                                    \
    { key, F_OBJECT, 0, 0, 0, 0, 0, NULL, table, doc, 0 }
/* an object of later keys only: left out while all of them are at their defaults */
#define LATER_OBJECT(key, table, doc)                                                              \
    { key, F_OBJECT, 0, 0, 0, 0, 0, NULL, table, doc, 1 }

static const char *const dataset_names[] = {"fashion-mnist", "cifar10", "imagenet32", "text", NULL};
static const char *const split_names[] = {"iid", "dirichlet", NULL};
static const char *const optimizer_kinds[] = {"sgd", "adam", NULL};
static const char *const scaling_names[] = {"none", "linear", NULL};
static const char *const schedule_kind_names[] = {"step", "cosine", "inverse_sqrt", NULL};
const char *const comm_policy_names[] = {"allreduce", "gossip", "local", "controlled", NULL};
static const char *const metric_names[] = {"exact", "estimate", NULL};
static const char *const target_names[] = {"constant", "adaptive", NULL};

static const field data_fields[] = {
    STR("dataset", data.dataset, dataset_names, "which dataset"),
    STR("path", data.path, NULL,
        "directory holding the dataset files (default: Debian's Fashion-MNIST; required for "
        "cifar10 and imagenet32)"),
    NUM("train_subset", F_INT64, data.train_subset, 0, 1e12,
        "use only the first k training samples (0: all)"),
    NUM("test_subset", F_INT64, data.test_subset, 0, 1e12,
        "use only the first k test samples (0: all)"),
    NUM("augment", F_BOOL, data.augment, 0, 1,
        "random crop after 4-pixel zero padding, and horizontal flip (per seed, epoch, worker)"),
    CHOICE("split", data.split, split_names,
           "iid: even random split every epoch; dirichlet: fixed label-skewed split"),
    NUM("dirichlet_alpha", F_DOUBLE, data.dirichlet_alpha, 1e-6, 1e6,
        "dirichlet: concentration (small: each worker sees few classes)"),
    LATER_STR("src_lang", data.src_lang, "text: source-language file suffix (train.en, ...)"),
    LATER_STR("tgt_lang", data.tgt_lang, "text: target-language file suffix"),
    LATER_NUM("tokens_per_batch", F_INT, data.tokens_per_batch, 16, 1 << 24,
              "text: padded tokens (sentences x longest) per worker batch"),
    LATER_NUM("max_len", F_INT, data.max_len, 0, 100000,
              "text: drop training pairs with more tokens on either side (0: keep all)"),
    LATER_NUM("min_freq", F_INT, data.min_freq, 1, 1000000,
              "text: tokens seen fewer times in training become <unk>"),
    LATER_NUM("lowercase", F_BOOL, data.lowercase, 0, 1, "text: lowercase before tokenizing"),
    FIELD_END};

static const field model_fields[] = {
    STR("kind", model.kind, model_kind_names, "network architecture"),
    LIST("hidden", F_INTS, model.hidden, model.n_hidden, 1, 1 << 20,
         "mlp: hidden layer widths (at most 8)"),
    NUM("width", F_INT, model.width, 1, 1024,
        "resnet20: channels of the first stage (16 is the paper's CIFAR ResNet-20)"),
    LATER_NUM("d_model", F_INT, model.seq.d_model, 8, 8192, "transformer: model width"),
    LATER_NUM("heads", F_INT, model.seq.heads, 1, 256,
              "transformer: attention heads (d_model must be a multiple)"),
    LATER_NUM("d_ff", F_INT, model.seq.d_ff, 1, 65536, "transformer: feed-forward width"),
    LATER_NUM("enc_layers", F_INT, model.seq.enc_layers, 1, 64, "transformer: encoder layers"),
    LATER_NUM("dec_layers", F_INT, model.seq.dec_layers, 1, 64, "transformer: decoder layers"),
    LATER_NUM("dropout", F_DOUBLE, model.seq.dropout, 0, 0.99,
              "transformer: dropout on embeddings and residual branches"),
    LATER_NUM("attn_dropout", F_DOUBLE, model.seq.attn_dropout, 0, 0.99,
              "transformer: dropout on attention weights"),
    LATER_NUM("relu_dropout", F_DOUBLE, model.seq.relu_dropout, 0, 0.99,
              "transformer: dropout after the feed-forward ReLU"),
    LATER_NUM("label_smoothing", F_DOUBLE, model.seq.label_smoothing, 0, 0.99,
              "transformer: label smoothing eps of the training loss"),
    FIELD_END};

static const field optimizer_fields[] = {
    CHOICE("kind", optimizer.kind, optimizer_kinds, "optimizer"),
    NUM("momentum", F_DOUBLE, optimizer.momentum, 0, 0.999999, "momentum coefficient mu"),
    NUM("nesterov", F_BOOL, optimizer.nesterov, 0, 1, "Nesterov momentum (PyTorch semantics)"),
    NUM("weight_decay", F_DOUBLE, optimizer.weight_decay, 0, 1,
        "L2 weight decay, added to the gradient (PyTorch style)"),
    NUM("bn_weight_decay", F_BOOL, optimizer.bn_weight_decay, 0, 1,
        "apply weight decay to batch-norm weights and biases too"),
    NUM("beta1", F_DOUBLE, optimizer.beta1, 0, 0.999999, "adam: first-moment decay"),
    NUM("beta2", F_DOUBLE, optimizer.beta2, 0, 0.999999999, "adam: second-moment decay"),
    NUM("eps", F_DOUBLE, optimizer.eps, 1e-16, 1, "adam: denominator epsilon"),
    LATER_NUM("gossip_moments", F_BOOL, optimizer.gossip_moments, 0, 1,
              "mix the moment buffers (adam m and v, or the sgd momentum) with the parameters: the "
              "same gossip rounds, or the same exact average; off: they stay local (the paper's "
              "decentralized Adam baseline)"),
    FIELD_END};

static const field schedule_fields[] = {
    CHOICE("kind", schedule.kind, schedule_kind_names,
           "after warm-up: step (x decay_factor at each decay_at), cosine (half-cosine to 0), "
           "inverse_sqrt (peak x sqrt(warm-up steps / step)); decay_at marks phases in all"),
    NUM("epochs", F_INT, schedule.epochs, 1, 100000, "training epochs"),
    NUM("local_batch", F_INT, schedule.local_batch, 1, 65536, "mini-batch per worker"),
    NUM("lr", F_DOUBLE, schedule.lr, 1e-12, 1e6, "learning rate per base_batch samples (> 0)"),
    CHOICE("scaling", schedule.scaling, scaling_names,
           "linear: lr * workers * local_batch / base_batch"),
    NUM("base_batch", F_DOUBLE, schedule.base_batch, 1, 1e9, "batch the lr is quoted for"),
    NUM("warmup_epochs", F_DOUBLE, schedule.warmup_epochs, 0, 1e6,
        "linear warm-up from lr to the scaled lr"),
    LIST("decay_at", F_DOUBLES, schedule.decay_at, schedule.n_decay, 1e-9, 1 - 1e-9,
         "fractions of training (increasing, in (0, 1)) where lr is multiplied by decay_factor; "
         "they split training into phases"),
    NUM("decay_factor", F_DOUBLE, schedule.decay_factor, 1e-9, 1, "lr multiplier at each decay"),
    LATER_LIST("extra_epochs", F_INTS, schedule.extra_epochs, schedule.n_extra, 0, 100000,
               "per phase, epochs appended at its end at its learning rate, the later phases "
               "keeping their length (a prolonged phase 1: [k]); training runs epochs + their sum"),
    FIELD_END};

static const field topology_fields[] = {
    CHOICE("kind", topology.kind, topology_kind_names, "gossip topology"), FIELD_END};

static const field control_fields[] = {
    CHOICE("metric", communication.control.metric, metric_names,
           "exact: Xi (one reduction of the model per round); estimate: Theta (one scalar)"),
    CHOICE("target", communication.control.target, target_names,
           "constant: factor x the phase's max Xi of the reference (or value); adaptive: factor x "
           "EMA of the mean gradient norm"),
    NUM("factor", F_DOUBLE, communication.control.factor, 1e-12, 1e6,
        "target factor (> 0); for a constant target, 1 means uncontrolled (plain gossip)"),
    NUM("value", F_DOUBLE, communication.control.value, 0, 1e12,
        "constant target given directly (> 0); 0: read the reference trace"),
    STR("reference", communication.control.reference, NULL,
        "trace of this experiment run uncontrolled (its /phases/max_xi)"),
    NUM("ema", F_DOUBLE, communication.control.ema, 0, 0.999999,
        "adaptive: EMA coefficient of the mean gradient norm, reset each phase"),
    NUM("max_rounds", F_INT, communication.control.max_rounds, 1, 100000,
        "cap on gossip rounds per step (hits are traced and warned)"),
    FIELD_END};

static const field slowmo_fields[] = {
    LATER_NUM("tau", F_INT, communication.slowmo.tau, 0, 1000000,
              "every tau steps, after the phase's own communication, average exactly and apply "
              "the slow momentum update (0: off)"),
    LATER_NUM("alpha", F_DOUBLE, communication.slowmo.alpha, 1e-9, 1e3,
              "slow learning rate (> 0: at 0 the outer iterate never moves)"),
    LATER_NUM("beta", F_DOUBLE, communication.slowmo.beta, 0, 0.999999, "slow momentum"),
    FIELD_END};

static const field communication_fields[] = {
    CHOICE("mode", communication.mode, comm_policy_names,
           "policy of the decentralized phases: allreduce, gossip (one round per step), local "
           "(one round every local_steps), controlled (rounds until the target is met)"),
    NUM("dec_phase", F_INT, communication.dec_phase, 0, SPEC_MAX_DECAYS + 1,
        "dec-phase-k: only phase k uses mode, every other phase all-reduces (0: every phase)"),
    {"phases", F_CHOICES, OFF(communication.phases), SPEC_MAX_DECAYS + 1,
     OFF(communication.n_phases), 0, 0, comm_policy_names, NULL,
     "explicit policy per phase, e.g. [\"controlled\", \"gossip\", \"gossip\"] (the "
     "paper's guideline); overrides mode",
     0},
    NUM("local_steps", F_INT, communication.local_steps, 1, 1000000,
        "H of the local policy: gossip once every H steps"),
    OBJECT("control", control_fields, "consensus control"),
    LATER_OBJECT("slowmo", slowmo_fields,
                 "SlowMo (Wang et al. 2020) on top of the phases' policies"),
    FIELD_END};

static const field trace_fields[] = {
    STR("path", trace.path, NULL, "HDF5 trace file (default: <name>.h5; --out overrides)"),
    NUM("measure_xi", F_BOOL, trace.measure_xi, 0, 1,
        "exact consensus distance every step (costs one all-reduce of the model)"),
    FIELD_END};

static const field checkpoint_fields[] = {
    STR("path", checkpoint.path, NULL,
        "checkpoint file (default: beside the trace, run.h5 -> run.ckpt.h5)"),
    NUM("every_epochs", F_INT, checkpoint.every_epochs, 0, 100000,
        "checkpoint at the end of every k-th epoch (0: never by epochs)"),
    NUM("every_minutes", F_DOUBLE, checkpoint.every_minutes, 0, 1e6,
        "checkpoint at the first step boundary this many minutes after the last one (0: never "
        "by time)"),
    NUM("keep", F_BOOL, checkpoint.keep, 0, 1,
        "keep the final checkpoint after the run completes (else it is deleted)"),
    FIELD_END};

static const field root_fields[] = {
    STR("name", name, NULL, "experiment name"),
    NUM("seed", F_INT64, seed, 0, 9.007199254740992e15, "seed of every random choice"),
    NUM("workers", F_INT, workers, 1, 65536, "number of workers n"),
    NUM("threads", F_INT, threads, 1, 256, "oneDNN threads per worker"),
    OBJECT("data", data_fields, "dataset"),
    OBJECT("model", model_fields, "network"),
    OBJECT("optimizer", optimizer_fields, "local optimizer"),
    OBJECT("schedule", schedule_fields, "epochs, batch and learning-rate schedule"),
    OBJECT("topology", topology_fields, "gossip topology"),
    OBJECT("communication", communication_fields, "how workers communicate"),
    OBJECT("trace", trace_fields, "HDF5 output"),
    OBJECT("checkpoint", checkpoint_fields, "checkpoints for resuming (ccdl run --resume)"),
    FIELD_END};

static void spec_set_defaults(ccdl_spec *s) {
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "ccdl");
    s->seed = 1;
    s->workers = 8;
    s->threads = 1;
    snprintf(s->data.dataset, sizeof s->data.dataset, "fashion-mnist");
    s->data.dirichlet_alpha = 1.0;
    snprintf(s->data.src_lang, sizeof s->data.src_lang, "en");
    snprintf(s->data.tgt_lang, sizeof s->data.tgt_lang, "de");
    s->data.tokens_per_batch = 2048;
    s->data.min_freq = 2;
    /* transformer: Vaswani et al.'s base model halved in width and depth (the paper's
     * down-scaling factor was lost in extraction; docs/transformer.md) */
    s->model.seq.d_model = 256;
    s->model.seq.heads = 4;
    s->model.seq.d_ff = 1024;
    s->model.seq.enc_layers = 3;
    s->model.seq.dec_layers = 3;
    s->model.seq.dropout = 0.1;
    s->model.seq.label_smoothing = 0.1;
    snprintf(s->model.kind, sizeof s->model.kind, "mlp");
    s->model.hidden[0] = 256;
    s->model.n_hidden = 1;
    s->model.width = 16;
    s->communication.slowmo.alpha = 1.0;
    s->optimizer.kind = OPTIMIZER_SGD;
    s->optimizer.momentum = 0.9;
    s->optimizer.nesterov = 1;
    s->optimizer.weight_decay = 1e-4;
    s->optimizer.bn_weight_decay = 1;
    s->optimizer.beta1 = 0.9;
    s->optimizer.beta2 = 0.999;
    s->optimizer.eps = 1e-8;
    s->schedule.epochs = 10;
    s->schedule.local_batch = 32;
    s->schedule.lr = 0.1;
    s->schedule.scaling = LR_SCALE_LINEAR;
    s->schedule.base_batch = 64;
    s->schedule.warmup_epochs = 0;
    s->schedule.decay_at[0] = 0.5;
    s->schedule.decay_at[1] = 0.75;
    s->schedule.n_decay = 2;
    s->schedule.decay_factor = 0.1;
    s->topology.kind = TOPO_RING;
    s->communication.mode = POLICY_GOSSIP;
    s->communication.local_steps = 1;
    s->communication.control.metric = METRIC_EXACT;
    s->communication.control.target = TARGET_CONSTANT;
    s->communication.control.factor = 0.25;
    s->communication.control.ema = 0.9;
    s->communication.control.max_rounds = 100;
    s->trace.measure_xi = 1;
    s->checkpoint.every_epochs = 1;
    s->checkpoint.every_minutes = 30;
}

/* ---------------------------------------------------------------- parsing */

static const char *json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static void choices_text(const char *const *choices, char *buf, size_t cap) {
    buf[0] = '\0';
    for (int i = 0; choices[i]; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", choices[i]);
    }
}

static int choice_index(const char *const *choices, const char *s) {
    for (int i = 0; choices[i]; i++)
        if (strcmp(choices[i], s) == 0) return i;
    return -1;
}

/* A JSON number as a double; integers must be exactly representable. */
static int json_number(const json_t *v, double *out) {
    if (json_is_integer(v))
        *out = (double)json_integer_value(v);
    else if (json_is_real(v))
        *out = json_real_value(v);
    else
        return -1;
    return 0;
}

static int parse_number(const field *f, const json_t *v, double *out, const char *src,
                        const char *path, ccdl_error *err) {
    int integral = f->type == F_INT || f->type == F_INT64 || f->type == F_INTS;
    if (integral && !json_is_integer(v))
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s: expected an integer; got %s", src, path,
                         json_type_name(v));
    if (json_number(v, out) != 0)
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s: expected a number; got %s", src, path,
                         json_type_name(v));
    if (!isfinite(*out) || *out < f->min || *out > f->max) {
        if (integral)
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "%s: %s: expected an integer in [%.17g, %.17g]; got %.17g", src, path,
                             f->min, f->max, *out);
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: %s: expected a number in [%.10g, %.10g]; got %.17g", src, path,
                         f->min, f->max, *out);
    }
    return 0;
}

static int parse_object(const field *table, const json_t *obj, ccdl_spec *spec, const char *src,
                        const char *prefix, ccdl_error *err);

static int parse_field(const field *f, const json_t *v, ccdl_spec *spec, const char *src,
                       const char *path, ccdl_error *err) {
    char *base = (char *)spec + f->offset;
    double x;
    switch (f->type) {
    case F_INT:
    case F_INT64:
    case F_DOUBLE:
        if (parse_number(f, v, &x, src, path, err)) return -1;
        if (f->type == F_INT)
            *(int *)base = (int)x;
        else if (f->type == F_INT64)
            *(int64_t *)base = (int64_t)json_integer_value(v);
        else
            *(double *)base = x;
        return 0;
    case F_BOOL:
        if (!json_is_boolean(v))
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s: expected true or false; got %s", src,
                             path, json_type_name(v));
        *(int *)base = json_is_true(v);
        return 0;
    case F_STRING:
    case F_CHOICE: {
        if (!json_is_string(v))
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s: expected a string; got %s", src, path,
                             json_type_name(v));
        const char *s = json_string_value(v);
        int idx = f->choices ? choice_index(f->choices, s) : 0;
        if (idx < 0) {
            char list[512];
            choices_text(f->choices, list, sizeof list);
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s: expected one of %s; got \"%s\"", src,
                             path, list, s);
        }
        if (f->type == F_CHOICE) {
            *(int *)base = idx;
            return 0;
        }
        if (strlen(s) == 0 || strlen(s) >= f->size)
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "%s: %s: expected a non-empty string of at most %zu characters", src,
                             path, f->size - 1);
        memcpy(base, s, strlen(s) + 1);
        return 0;
    }
    case F_DOUBLES:
    case F_INTS:
    case F_CHOICES: {
        if (!json_is_array(v))
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s: expected an array; got %s", src, path,
                             json_type_name(v));
        size_t count = json_array_size(v);
        if (count > f->size)
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s: expected at most %zu entries; got %zu",
                             src, path, f->size, count);
        for (size_t k = 0; k < count; k++) {
            char item[300];
            snprintf(item, sizeof item, "%s[%zu]", path, k);
            if (f->type == F_CHOICES) {
                field one = *f;
                one.type = F_CHOICE;
                one.offset = f->offset + k * sizeof(int);
                if (parse_field(&one, json_array_get(v, k), spec, src, item, err)) return -1;
                continue;
            }
            if (parse_number(f, json_array_get(v, k), &x, src, item, err)) return -1;
            if (f->type == F_INTS)
                ((int *)base)[k] = (int)x;
            else
                ((double *)base)[k] = x;
        }
        *(int *)((char *)spec + f->count_offset) = (int)count;
        return 0;
    }
    case F_OBJECT:
        if (!json_is_object(v))
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s: expected an object; got %s", src, path,
                             json_type_name(v));
        return parse_object(f->sub, v, spec, src, path, err);
    }
    return -1;
}

static int parse_object(const field *table, const json_t *obj, ccdl_spec *spec, const char *src,
                        const char *prefix, ccdl_error *err) {
    const char *key;
    json_t *v;
    /* Strict: a key nobody asked for is an error, so a typo never runs the wrong grid. */
    json_object_foreach((json_t *)obj, key, v) {
        const field *f = table;
        while (f->key && strcmp(f->key, key) != 0) f++;
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
        if (!f->key) {
            char list[512] = "";
            for (const field *g = table; g->key; g++) {
                size_t len = strlen(list);
                snprintf(list + len, sizeof list - len, "%s%s", g == table ? "" : ", ", g->key);
            }
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s: unknown key (expected one of %s)", src,
                             path, list);
        }
        if (parse_field(f, v, spec, src, path, err)) return -1;
    }
    return 0;
}

/* Rules that span several fields. */
static int spec_validate(const ccdl_spec *s, const char *src, ccdl_error *err) {
    for (int k = 1; k < s->schedule.n_decay; k++)
        if (!(s->schedule.decay_at[k] > s->schedule.decay_at[k - 1]))
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "%s: schedule.decay_at[%d]: expected increasing fractions; got %g "
                             "after %g",
                             src, k, s->schedule.decay_at[k], s->schedule.decay_at[k - 1]);
    const int text = strcmp(s->data.dataset, "text") == 0;
    if (text != model_kind_takes_tokens(s->model.kind))
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         text ? "%s: model.kind: %s reads images; data.dataset \"text\" needs a "
                                "sequence model (transformer)"
                              : "%s: model.kind: %s reads sentences; it needs data.dataset "
                                "\"text\"",
                         src, s->model.kind);
    if (s->model.seq.d_model % s->model.seq.heads != 0)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: model.heads: d_model (%d) must be a multiple of it; got %d", src,
                         s->model.seq.d_model, s->model.seq.heads);
    if (s->schedule.warmup_epochs > s->schedule.epochs)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: schedule.warmup_epochs: expected at most epochs (%d); got %g", src,
                         s->schedule.epochs, s->schedule.warmup_epochs);
    if (s->optimizer.gossip_moments && s->optimizer.kind == OPTIMIZER_SGD &&
        s->optimizer.momentum == 0)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: optimizer.gossip_moments: sgd without momentum has no moments to "
                         "gossip",
                         src);
    if (!text && s->data.train_subset &&
        s->data.train_subset < (int64_t)s->workers * s->schedule.local_batch)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: data.train_subset: expected at least workers * local_batch = %lld "
                         "samples; got %lld",
                         src, (long long)s->workers * s->schedule.local_batch,
                         (long long)s->data.train_subset);
    const int phases = spec_phase_count(s);
    const struct spec_communication *c = &s->communication;
    if (s->schedule.n_extra && s->schedule.kind != SCHEDULE_STEP)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: schedule.extra_epochs: needs schedule.kind \"step\" (a cosine or "
                         "inverse_sqrt rate is a function of the whole run, not of the phase)",
                         src);
    const struct spec_slowmo *sm = &s->communication.slowmo;
    if (sm->tau == 0 && (sm->alpha != 1.0 || sm->beta != 0.0))
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: communication.slowmo.%s: has no effect without "
                         "communication.slowmo.tau > 0",
                         src, sm->alpha != 1.0 ? "alpha" : "beta");
    if (s->schedule.n_extra > phases)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: schedule.extra_epochs: expected at most one entry per phase (%d, "
                         "from schedule.decay_at); got %d",
                         src, phases, s->schedule.n_extra);
    if (c->n_phases && c->n_phases != phases)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: communication.phases: expected one policy per phase (%d, from "
                         "schedule.decay_at); got %d",
                         src, phases, c->n_phases);
    if (c->n_phases && c->dec_phase)
        return ccdl_fail(
            err, CCDL_ERR_INPUT,
            "%s: communication.dec_phase: cannot be combined with communication.phases", src);
    if (c->dec_phase > phases)
        return ccdl_fail(
            err, CCDL_ERR_INPUT,
            "%s: communication.dec_phase: expected 0..%d (the number of phases); got %d", src,
            phases, c->dec_phase);
    int gossips = 0;
    for (int k = 1; k <= phases; k++) gossips += spec_phase_policy(s, k) != POLICY_ALLREDUCE;
    if (gossips) {
        ccdl_error terr;
        if (topology_check((topology_kind)s->topology.kind, s->workers, &terr))
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s", src, terr.text);
    }
    if (spec_needs_reference(s) && c->control.reference[0] == '\0')
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: communication.control.reference: a constant target with factor %g "
                         "needs the trace of this experiment run uncontrolled (or set "
                         "communication.control.value)",
                         src, c->control.factor);
    return 0;
}

comm_policy spec_phase_policy(const ccdl_spec *s, int phase) {
    const struct spec_communication *c = &s->communication;
    if (c->n_phases) return (comm_policy)c->phases[phase - 1];
    if (c->dec_phase && c->dec_phase != phase) return POLICY_ALLREDUCE;
    return (comm_policy)c->mode;
}

int spec_needs_reference(const ccdl_spec *s) {
    const struct spec_control *ctl = &s->communication.control;
    int controlled = 0;
    for (int k = 1; k <= spec_phase_count(s); k++)
        controlled += spec_phase_policy(s, k) == POLICY_CONTROLLED;
    return controlled && ctl->target == TARGET_CONSTANT && ctl->value == 0 && ctl->factor != 1;
}

int spec_parse(const char *json_text, const char *source, ccdl_spec *spec, ccdl_error *err) {
    json_error_t jerr;
    spec_set_defaults(spec);
    json_t *root = json_loads(json_text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s:%d:%d: invalid JSON: %s", source, jerr.line,
                         jerr.column, jerr.text);
    int rc = 0;
    if (!json_is_object(root))
        rc = ccdl_fail(err, CCDL_ERR_INPUT, "%s: expected a JSON object at the top; got %s", source,
                       json_type_name(root));
    else
        rc = parse_object(root_fields, root, spec, source, "", err);
    json_decref(root);
    if (rc) return rc;
    if (spec->data.path[0] == '\0') {
        if (strcmp(spec->data.dataset, "fashion-mnist") != 0)
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "%s: data.path: required for %s (its files cannot be downloaded "
                             "here; see docs/data.md)",
                             source, spec->data.dataset);
        snprintf(spec->data.path, sizeof spec->data.path, "%s", CCDL_DEFAULT_DATA_DIR);
    }
    if (spec->trace.path[0] == '\0')
        snprintf(spec->trace.path, sizeof spec->trace.path, "%s.h5", spec->name);
    /* one spelling per experiment: trailing zero extra epochs say nothing ([2, 0] is [2], [0]
     * is no key), so the canonical spec, and with it resume and reference checks, agree */
    while (spec->schedule.n_extra > 0 &&
           spec->schedule.extra_epochs[spec->schedule.n_extra - 1] == 0)
        spec->schedule.n_extra--;
    return spec_validate(spec, source, err);
}

int spec_load(const char *path, ccdl_spec *spec, ccdl_error *err) {
    char *text = read_text_file(path, NULL, err);
    if (!text) return -1;
    int rc = spec_parse(text, path, spec, err);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- emitting */

/* A later key (field.later) at its default value: left out of the canonical spec. */
static int later_at_default(const field *f, const ccdl_spec *spec) {
    const char *base = (const char *)spec + f->offset;
    static ccdl_spec defaults;
    static int ready;
    if (!ready) spec_set_defaults(&defaults), ready = 1;
    const char *d = (const char *)&defaults + f->offset;
    switch (f->type) {
    case F_INT:
    case F_BOOL:
    case F_CHOICE:
        return *(const int *)base == *(const int *)d;
    case F_INT64:
        return *(const int64_t *)base == *(const int64_t *)d;
    case F_DOUBLE:
        return *(const double *)base == *(const double *)d;
    case F_STRING:
        return strcmp(base, d) == 0;
    case F_DOUBLES:
    case F_INTS:
    case F_CHOICES: /* later lists default to empty */
        return *(const int *)((const char *)spec + f->count_offset) == 0;
    default:
        return 0;
    }
}

/* all: emit later keys at their defaults too (the key reference). */
static json_t *emit_object(const field *table, const ccdl_spec *spec, int all) {
    json_t *obj = json_object();
    for (const field *f = table; f->key; f++) {
        const char *base = (const char *)spec + f->offset;
        json_t *v = NULL;
        if (f->later && !all && later_at_default(f, spec)) continue;
        switch (f->type) {
        case F_INT:
            v = json_integer(*(const int *)base);
            break;
        case F_INT64:
            v = json_integer(*(const int64_t *)base);
            break;
        case F_DOUBLE:
            v = json_real(*(const double *)base);
            break;
        case F_BOOL:
            v = json_boolean(*(const int *)base);
            break;
        case F_STRING:
            /* an empty string means unset (e.g. no reference): leave it out, so the
             * canonical text parses again */
            if (*base == '\0') continue;
            v = json_string(base);
            break;
        case F_CHOICE:
            v = json_string(f->choices[*(const int *)base]);
            break;
        case F_DOUBLES:
        case F_INTS:
        case F_CHOICES: {
            v = json_array();
            int count = *(const int *)((const char *)spec + f->count_offset);
            for (int k = 0; k < count; k++) {
                const int *ints = (const int *)base;
                json_array_append_new(v, f->type == F_INTS ? json_integer(ints[k])
                                         : f->type == F_CHOICES
                                             ? json_string(f->choices[ints[k]])
                                             : json_real(((const double *)base)[k]));
            }
            break;
        }
        case F_OBJECT:
            v = emit_object(f->sub, spec, all);
            if (f->later && !all && json_object_size(v) == 0) {
                json_decref(v);
                continue;
            }
            break;
        }
        json_object_set_new(obj, f->key, v);
    }
    return obj;
}

char *spec_canonical_json(const ccdl_spec *spec) {
    json_t *root = emit_object(root_fields, spec, 0);
    char *text = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(root);
    if (!text) ccdl_die("cannot serialise spec");
    char *copy = xstrdup(text);
    free(text);
    return copy;
}

/* ---------------------------------------------------------------- reference */

static const char *type_text(const field *f) {
    switch (f->type) {
    case F_INT:
    case F_INT64:
        return "integer";
    case F_DOUBLE:
        return "number";
    case F_BOOL:
        return "boolean";
    case F_STRING:
    case F_CHOICE:
        return "string";
    case F_DOUBLES:
        return "array of numbers";
    case F_INTS:
        return "array of integers";
    case F_CHOICES:
        return "array of strings";
    case F_OBJECT:
        return "object";
    }
    return "?";
}

static void print_table(const field *table, const json_t *defaults, const char *prefix) {
    for (const field *f = table; f->key; f++) {
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", f->key);
        json_t *dv = json_object_get(defaults, f->key);
        if (f->type == F_OBJECT) {
            print_table(f->sub, dv, path);
            continue;
        }
        char *dtext = json_dumps(dv, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(6));
        char range[600] = "";
        if (f->choices) {
            char list[512];
            choices_text(f->choices, list, sizeof list);
            snprintf(range, sizeof range, "one of: %s", list);
        } else if (f->type != F_STRING && f->type != F_BOOL && f->type != F_CHOICES) {
            snprintf(range, sizeof range, "[%.10g, %.10g]", f->min, f->max);
        }
        printf("| `%s` | %s | `%s` | %s | %s |\n", path, type_text(f), dtext ? dtext : "\"\"",
               range, f->doc);
        free(dtext);
    }
}

void spec_print_reference(void) {
    ccdl_spec defaults;
    spec_set_defaults(&defaults);
    snprintf(defaults.trace.path, sizeof defaults.trace.path, "<name>.h5");
    json_t *d = emit_object(root_fields, &defaults, 1);
    printf("| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n");
    print_table(root_fields, d, "");
    json_decref(d);
}

/* ---------------------------------------------------------------- comparing specs */

/* First differing key below objects a and b (both objects), as a dotted path in key. */
static int first_difference(const json_t *a, const json_t *b, const char *prefix, char *key,
                            size_t cap, const char *ignore) {
    /* canonical specs have sorted keys; walk the union in sorted order */
    const char *names[256];
    int count = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) if (count < 256) names[count++] = k;
    json_object_foreach((json_t *)b, k, v) {
        if (!json_object_get(a, k) && count < 256) names[count++] = k;
    }
    for (int i = 1; i < count; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    for (int i = 0; i < count; i++) {
        if (ignore && strcmp(names[i], ignore) == 0) continue;
        const json_t *x = json_object_get(a, names[i]), *y = json_object_get(b, names[i]);
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", names[i]);
        if (json_is_object(x) && json_is_object(y)) {
            if (first_difference(x, y, path, key, cap, NULL)) return 1;
        } else if (!x || !y || !json_equal(x, y)) {
            snprintf(key, cap, "%s", path);
            return 1;
        }
    }
    return 0;
}

int spec_json_first_difference(const char *a, const char *b, char *key, size_t cap) {
    json_t *x = json_loads(a, 0, NULL), *y = json_loads(b, 0, NULL);
    int rc = -1;
    if (json_is_object(x) && json_is_object(y))
        rc = first_difference(x, y, "", key, cap, "checkpoint");
    json_decref(x);
    json_decref(y);
    return rc;
}
