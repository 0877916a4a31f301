/* bleu.h: corpus BLEU-4 as sacreBLEU computes it by default (docs/text.md).
 *
 * The defaults of sacreBLEU 2.x (signature nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp):
 * each line has trailing whitespace stripped and is tokenized by the mteval-v13a rules
 * (bleu_tokenize_13a); n-grams of orders 1..4 are counted per sentence, each hypothesis
 * n-gram count clipped by the reference's, and the counts summed over the corpus; the score
 * is 100 * BP * exp(mean of the log precisions), BP = exp(1 - r / c) when c < r (c, r the
 * corpus token counts of hypotheses and references, BP = 0 when c = 0). Smoothing 'exp'
 * (mteval-v13a's): the k-th order with zero matches gets precision 1 / (2^k * total) instead
 * of 0. Further cases as sacreBLEU: no match at any order gives 0; an order with no
 * hypothesis n-grams at all (every hypothesis shorter than the order) gives 0.
 *
 * One reference per hypothesis. The statistics are integers, so per-worker statistics
 * summed in any order give the same score bit for bit (bleu_stats_add_stats). */
#ifndef CCDL_BLEU_H
#define CCDL_BLEU_H

#include <stdint.h>

#define BLEU_ORDER 4

/* The sufficient statistics of corpus BLEU: plain int64 fields, so an array of them can
 * travel as BLEU_STATS_WORDS int64 values (e.g. MPI_INT64_T) and be summed. */
typedef struct {
    int64_t sys_len, ref_len;    /* tokens in the hypotheses, in the references */
    int64_t correct[BLEU_ORDER]; /* clipped matching n-grams of order k + 1 */
    int64_t total[BLEU_ORDER];   /* hypothesis n-grams of order k + 1 */
} bleu_stats;
#define BLEU_STATS_WORDS (2 + 2 * BLEU_ORDER)

typedef struct {
    double score;                 /* 0 .. 100 */
    double precision[BLEU_ORDER]; /* percent, after smoothing (sacreBLEU's "p1/p2/p3/p4") */
    double bp;                    /* brevity penalty */
} bleu_score;

/* The mteval-v13a tokenization of one line as sacreBLEU applies it: trailing whitespace
 * stripped; "<skipped>" removed, "-\n" removed, "\n" -> " "; the entities &quot; &amp; &lt;
 * &gt; unescaped in that order (so "&amp;lt;" becomes "<"); then every character of
 * { | } ~ [ \ ] ^ _ ` ! " # $ % & ( ) * + : ; < = > ? @ / is split off; '.' and ',' are
 * split off unless between digits (not split when preceded by a digit, nor when followed by
 * one); '-' is split off after a digit; the result is rejoined with single spaces (Python's
 * whitespace: ASCII, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F,
 * U+205F, U+3000 and U+001C..U+001F). Case is kept. Returns a malloc'd string. */
char *bleu_tokenize_13a(const char *line);

void bleu_stats_clear(bleu_stats *s);
/* Add one sentence pair (untokenized hypothesis and reference, as they would be given to
 * sacreBLEU). */
void bleu_stats_add(bleu_stats *s, const char *hypothesis, const char *reference);
/* into += from (per-worker statistics gathered into one corpus). */
void bleu_stats_add_stats(bleu_stats *into, const bleu_stats *from);
/* The score of the statistics, sacreBLEU's compute_bleu with smooth_method 'exp'. */
bleu_score bleu_compute(const bleu_stats *s);

/* Corpus BLEU of count hypothesis/reference pairs; stats (may be NULL) gets the counts. */
double bleu_corpus(const char *const *hypotheses, const char *const *references, int64_t count,
                   bleu_stats *stats);

#endif
