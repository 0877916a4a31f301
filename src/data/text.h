/* text.h: a parallel text corpus in the Multi30k layout, its tokenizer and vocabularies,
 * and batches by token count (docs/text.md has the rules and the reasons).
 *
 * Files: DIR/{train,val,test}.{SRC,TGT} (default SRC = en, TGT = de), one sentence per
 * line, UTF-8, the two files of a split line-aligned. A missing file, differing line
 * counts, invalid UTF-8, a NUL byte, an empty file or an empty line is a one-line
 * CCDL_ERR_INPUT naming the file (and the line).
 *
 * Tokens: words split on whitespace, punctuation split off (Moses-like, no subwords).
 * Vocabularies: one per language, from the training files only, ids 0..3 the specials
 * <pad> <unk> <bos> <eos>, then tokens by count (descending), ties by bytes. A batch is the
 * padded (B, T) int32 arrays of a group of pairs with B * T within a token budget; which
 * batches a worker takes is a pure function of (seed, epoch, workers, worker). */
#ifndef CCDL_TEXT_H
#define CCDL_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum { TEXT_PAD = 0, TEXT_UNK = 1, TEXT_BOS = 2, TEXT_EOS = 3, TEXT_SPECIALS = 4 };

/* ---------------------------------------------------------------- tokens */

/* The tokens of one or more lines: token k is the NUL-terminated string bytes + start[k]. */
typedef struct {
    int64_t count;
    int64_t *start;
    char *bytes;
    size_t len, cap_bytes; /* bytes used, allocated */
    int64_t cap_tokens;
} text_tokens;

/* Append the tokens of line[0..len) to t (zero-initialize t first). Rules: runs of whitespace
 * (Python's str.isspace set: ASCII, U+00A0, U+2000..U+200A, ...) separate tokens; every
 * ASCII punctuation character, and the Unicode ones listed in docs/text.md (quotes, dashes,
 * ellipsis, inverted marks), is a token of its own, except '-', '\'' and U+2019 between two
 * word characters ("t-shirt", "man's") and '.' and ',' between two ASCII digits ("3.5").
 * lowercase: ASCII A-Z and Latin-1 U+00C0..U+00DE (but U+00D7) are lowercased. */
void text_tokenize(const char *line, size_t len, int lowercase, text_tokens *t);
void text_tokens_free(text_tokens *t);

/* A sentence from tokens: joined by single spaces except around punctuation (no space
 * before . , ! ? ; : % ) ] } ' and closing quotes, none after ( [ { $ # and opening quotes;
 * '"' alternates between opening and closing). Returns a malloc'd string. */
char *text_detokenize(const char *const *tokens, int64_t count);

/* ---------------------------------------------------------------- vocabulary */

typedef struct {
    int32_t size;
    char **token;        /* [size] id -> token (each its own allocation) */
    char **sorted_token; /* [size] the tokens in byte order, for lookup */
    int32_t *sorted_id;  /* [size] their ids */
} text_vocab;

/* The vocabulary of the tokens of t: the 4 specials, then every token seen at least
 * min_freq times, by count (descending), ties by bytes (strcmp); at most max_size entries
 * in all when max_size > 0 (then max_size >= TEXT_SPECIALS). */
void text_vocab_build(const text_tokens *t, int min_freq, int32_t max_size, text_vocab *v);
void text_vocab_free(text_vocab *v);
/* The id of token, TEXT_UNK when it is not in the vocabulary. */
int32_t text_vocab_lookup(const text_vocab *v, const char *token);

/* The flat form stored with a run: every token followed by '\n', in id order (tokens never
 * hold whitespace). malloc'd, *len bytes, not NUL-terminated. */
char *text_vocab_serialize(const text_vocab *v, size_t *len);
/* Read the flat form; -1 + err (CCDL_ERR_INPUT, naming `what` and the line) unless it is
 * '\n'-terminated lines of valid UTF-8 without whitespace, distinct, non-empty, the first
 * four the specials. */
int text_vocab_parse(const char *buf, size_t len, const char *what, text_vocab *v, ccdl_error *err);
int text_vocab_equal(const text_vocab *a, const text_vocab *b);
/* 0 if stored equals rebuilt; else -1 + err (CCDL_ERR_INPUT) naming `what` and the first
 * id that differs. */
int text_vocab_check(const text_vocab *stored, const text_vocab *rebuilt, const char *what,
                     ccdl_error *err);

/* The ids of sentence (no specials): tokenized as text_tokenize, unknown tokens TEXT_UNK.
 * Returns the count; *ids is malloc'd. */
int64_t text_encode(const text_vocab *v, const char *sentence, int lowercase, int32_t **ids);
/* The sentence of ids: stops at the first TEXT_EOS, skips TEXT_PAD and TEXT_BOS, writes
 * TEXT_UNK as "<unk>", detokenized by text_detokenize. malloc'd. */
char *text_decode(const text_vocab *v, const int32_t *ids, int64_t count);

/* ---------------------------------------------------------------- the corpus */

typedef struct {
    const char *dir;
    const char *src_lang, *tgt_lang; /* file suffixes, "en" and "de" */
    int lowercase;                   /* 0: case kept */
    int min_freq;                    /* 2 */
    int32_t max_vocab;               /* 0: no cap; else entries per vocabulary, specials included */
    int max_len; /* drop training pairs with more tokens on either side; 0: keep all */
} text_config;

void text_config_default(text_config *cfg);

/* One split: the pairs as token ids without specials, and the lines as read. */
typedef struct {
    int64_t count;
    int64_t *src_start, *tgt_start; /* [count + 1]: pair i is ids[start[i] .. start[i + 1]) */
    int32_t *src_ids, *tgt_ids;
    const char **src_text, **tgt_text; /* [count] the lines (without '\r\n'): BLEU references */
    int64_t *line;                     /* [count] line number in the files, from 1 */
    int64_t dropped;                   /* pairs the length filter dropped (training only) */
    char *src_raw, *tgt_raw;           /* the files' bytes, owned */
} text_split;

static inline int64_t text_src_len(const text_split *s, int64_t i) {
    return s->src_start[i + 1] - s->src_start[i];
}
static inline int64_t text_tgt_len(const text_split *s, int64_t i) {
    return s->tgt_start[i + 1] - s->tgt_start[i];
}
/* Columns pair i needs: source + <eos>, <bos> + target (= target + <eos>). */
static inline int64_t text_pair_width(const text_split *s, int64_t i) {
    const int64_t a = text_src_len(s, i) + 1, b = text_tgt_len(s, i) + 1;
    return a > b ? a : b;
}
/* The largest text_pair_width of the split (positional encodings must reach it). */
int64_t text_split_max_width(const text_split *s);

typedef struct {
    text_vocab src_vocab, tgt_vocab; /* from the training files, before the length filter */
    text_split train, val, test;     /* the length filter applies to train only */
} text_corpus;

/* Read the six files, build the vocabularies, encode every split. -1 + err on bad input. */
int text_corpus_load(const text_config *cfg, text_corpus *c, ccdl_error *err);
void text_corpus_free(text_corpus *c);

/* ---------------------------------------------------------------- batches */

/* Pairs grouped into batches: batch b is pairs pair[start[b] .. start[b + 1]). */
typedef struct {
    int64_t count;
    int64_t *start; /* [count + 1] */
    int32_t *pair;
} text_plan;

/* A training epoch. The pairs, permuted by rng_seed(seed, RNG_SHUFFLE, epoch, 0), are
 * sorted (stably) by (width, source length, target length), cut greedily into batches with
 * B * max width <= token_budget, the largest batches split in two until the count is a
 * multiple of workers, and the batches shuffled by the same stream. Every pair is in
 * exactly one batch. Worker w takes batch step * workers + w at each step
 * (text_plan_batch), for text_plan_steps steps. The plan depends on (split, budget,
 * workers, seed, epoch) only. -1 + err (CCDL_ERR_INPUT) if a pair is wider than the
 * budget or the pairs cannot make a multiple of workers batches. */
int text_plan_train(const text_split *train, int64_t token_budget, int workers, uint64_t seed,
                    int epoch, text_plan *plan, ccdl_error *err);
/* Evaluation: every pair in order of (width, source length, target length, index), cut
 * greedily as above; a pair wider than the budget makes a batch of its own (the only
 * batches over the budget). Worker w of n may take batches w, w + n, ... */
void text_plan_eval(const text_split *split, int64_t token_budget, text_plan *plan);
void text_plan_free(text_plan *plan);

static inline int64_t text_plan_steps(const text_plan *p, int workers) {
    return p->count / workers;
}
static inline int64_t text_plan_batch(int workers, int worker, int64_t step) {
    return step * workers + worker;
}

/* The padded arrays of one batch, row-major (rows, columns). */
typedef struct {
    int rows;
    int src_cols;                   /* longest source + 1 */
    int tgt_cols;                   /* longest target + 1 */
    int32_t *src;                   /* (rows, src_cols): tokens, <eos>, <pad>... */
    int32_t *tgt_in;                /* (rows, tgt_cols): <bos>, tokens, <pad>... */
    int32_t *tgt_out;               /* (rows, tgt_cols): tokens, <eos>, <pad>... */
    int64_t src_tokens, tgt_tokens; /* entries that are not <pad> in src, in tgt_out */
    size_t cap_src, cap_tgt;        /* allocated entries */
} text_batch;

/* Fill batch b of plan from split (zero-initialize out once; buffers grow as needed). */
void text_batch_fill(const text_split *split, const text_plan *plan, int64_t b, text_batch *out);
void text_batch_free(text_batch *out);

#endif
