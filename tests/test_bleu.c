/* test_bleu.c: corpus BLEU against hand-worked examples (n-gram counts, precisions and
 * brevity penalty worked out in the comments, the expected score written as a closed
 * form), sacreBLEU's 'exp' smoothing and zero cases, and the 13a tokenization rules
 * (punctuation, periods and commas around digits, dashes after digits, quotes, entities,
 * Python whitespace). The oracle is the arithmetic in the comments, not another BLEU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bleu.h"
#include "check.h"

static void expect_13a(const char *line, const char *want) {
    char *got = bleu_tokenize_13a(line);
    CHECK_MSG(strcmp(got, want) == 0, "13a(\"%s\") = \"%s\", want \"%s\"", line, got, want);
    free(got);
}

static void test_tokenize_13a(void) {
    /* every character of { | } ~ [ \ ] ^ _ ` ! " # $ % & ( ) * + : ; < = > ? @ / is split off */
    expect_13a("Hello, world!", "Hello , world !");
    expect_13a("a(b)c[d]e{f}g", "a ( b ) c [ d ] e { f } g");
    expect_13a("x/y:z;w?v@u", "x / y : z ; w ? v @ u");
    expect_13a("a_b^c`d~e|f\\g", "a _ b ^ c ` d ~ e | f \\ g");
    expect_13a("50% + 3*4 = #1 <ok>", "50 % + 3 * 4 = # 1 < ok >");
    /* apostrophes and hyphens between letters stay */
    expect_13a("don't stop the state-of-the-art", "don't stop the state-of-the-art");
    /* quotes: '"' is split off, "'" is not */
    expect_13a("He said \"hi\" and 'bye'", "He said \" hi \" and 'bye'");
    /* period and comma: kept between digits, split otherwise */
    expect_13a("It costs $3,000.50 now.", "It costs $ 3,000.50 now .");
    expect_13a("pi is 3.14, e is 2.72.", "pi is 3.14 , e is 2.72 .");
    /* "3." : the period follows a digit (rule 2 does not fire) but is followed by a space
     * (rule 3 does); ".5": preceded by a space, split by rule 2 */
    expect_13a("in 3. Or .5 of it", "in 3 . Or . 5 of it");
    expect_13a("e.g. U.S.A.", "e . g . U . S . A .");
    expect_13a("1,000,000 people", "1,000,000 people");
    expect_13a("a,b", "a , b");
    /* a dash after a digit is split off; between letters or before a digit it stays */
    expect_13a("1990-2000", "1990 - 2000");
    expect_13a("a 5-year-old", "a 5 - year-old");
    expect_13a("x-1 and -3", "x-1 and -3");
    /* entities, unescaped in the order &quot; &amp; &lt; &gt; */
    expect_13a("Tom &amp; Jerry", "Tom & Jerry");
    expect_13a("&quot;yes&quot;", "\" yes \"");
    expect_13a("a &lt;b&gt; c", "a < b > c");
    /* "&amp;lt;" -> "&lt;" -> "<"; "&amp;quot;" -> "&quot;" stays (quot went first) and
     * is then split as & quot ; */
    expect_13a("&amp;lt;", "<");
    expect_13a("&amp;quot;", "& quot ;");
    expect_13a("&apos;s", "& apos ; s"); /* not an entity 13a knows */
    /* <skipped> removed; "-\n" joins, "\n" is a space */
    expect_13a("a <skipped> b", "a b");
    expect_13a("hyphen-\nated line\nbreak", "hyphenated line break");
    /* Python whitespace: runs become one space, trailing ones go */
    expect_13a("  a \t b\xC2\xA0"
               "c\xE3\x80\x80"
               "d\xE2\x80\x89"
               "e  ",
               "a b c d e");
    expect_13a("x\x1c"
               "y",
               "x y");
    expect_13a("", "");
    expect_13a("   ", "");
    /* non-ASCII letters are word characters; a period after one is split off */
    expect_13a("Gr\xC3\xBC\xC3\x9F"
               "e.",
               "Gr\xC3\xBC\xC3\x9F"
               "e .");
    /* a non-ASCII character is one "non-digit" for the period rules: "ü.5" -> "ü . 5" */
    expect_13a("\xC3\xBC.5", "\xC3\xBC . 5");
    /* case is kept */
    expect_13a("The CAT", "The CAT");
}

/* BLEU of a one-pair corpus. */
static bleu_score score_of(const char *hyp, const char *ref, bleu_stats *st) {
    bleu_stats_clear(st);
    bleu_stats_add(st, hyp, ref);
    return bleu_compute(st);
}

static void test_perfect_match(void) {
    /* "The cat sat on the mat." -> 13a: The cat sat on the mat .  (7 tokens)
     * n-grams of orders 1..4: 7, 6, 5, 4, all matched; every precision 100, c = r = 7,
     * BP = 1 -> BLEU = 100 exactly (exp(4 log 100 / 4) = 100). */
    bleu_stats st;
    bleu_score s = score_of("The cat sat on the mat.", "The cat sat on the mat.", &st);
    CHECK(st.sys_len == 7 && st.ref_len == 7);
    CHECK(st.total[0] == 7 && st.total[1] == 6 && st.total[2] == 5 && st.total[3] == 4);
    CHECK(st.correct[0] == 7 && st.correct[3] == 4);
    CHECK_CLOSE(s.score, 100.0, 1e-12, 0);
    CHECK(s.bp == 1.0);
    /* tokenization applies to both sides: "cat,sat." and "cat , sat ." are the same
     * 4 tokens (cat , sat .) */
    s = score_of("cat,sat.", "cat , sat .", &st);
    CHECK_CLOSE(s.score, 100.0, 1e-12, 0);
}

static void test_brevity_penalty(void) {
    /* Pair 1: hyp "the cat sat on the mat" (6 tokens), ref "the cat sat on the red mat" (7).
     *   unigrams: the x2, cat, sat, on, mat all in the ref (the x2 there too): 6 / 6
     *   bigrams:  the-cat cat-sat sat-on on-the match, the-mat does not: 4 / 5
     *   trigrams: the-cat-sat cat-sat-on sat-on-the match, on-the-mat not: 3 / 4
     *   4-grams:  the-cat-sat-on cat-sat-on-the match, sat-on-the-mat not: 2 / 3
     * Pair 2: hyp = ref = "a dog runs" (3 tokens): 3 / 3, 2 / 2, 1 / 1, 0 / 0.
     * Corpus: 9/9, 6/7, 4/5, 2/3; c = 9 < r = 10: BP = exp(1 - 10/9) = exp(-1/9).
     * BLEU = 100 exp(-1/9) (1 * 6/7 * 4/5 * 2/3)^(1/4) = 100 exp(-1/9) (16/35)^(1/4)
     *      = 73.5876... (corpus counts, not a mean of sentence scores). */
    const char *hyp[] = {"the cat sat on the mat", "a dog runs"};
    const char *ref[] = {"the cat sat on the red mat", "a dog runs"};
    bleu_stats st;
    const double score = bleu_corpus(hyp, ref, 2, &st);
    const int64_t want_correct[4] = {9, 6, 4, 2}, want_total[4] = {9, 7, 5, 3};
    for (int k = 0; k < 4; k++)
        CHECK_MSG(st.correct[k] == want_correct[k] && st.total[k] == want_total[k],
                  "order %d: %lld / %lld", k + 1, (long long)st.correct[k], (long long)st.total[k]);
    CHECK(st.sys_len == 9 && st.ref_len == 10);
    const double want = 100.0 * exp(-1.0 / 9.0) * pow(16.0 / 35.0, 0.25);
    CHECK_CLOSE(score, want, 1e-12, 1e-12);
    bleu_score s = bleu_compute(&st);
    CHECK_CLOSE(s.bp, exp(-1.0 / 9.0), 1e-15, 0);
    CHECK_CLOSE(s.precision[1], 600.0 / 7.0, 1e-12, 0);
    CHECK_CLOSE(s.precision[3], 200.0 / 3.0, 1e-12, 0);

    /* The first pair alone: c = 6, r = 7: 100 exp(-1/6) (0.8 * 0.75 * 2/3)^(1/4)
     * = 100 exp(-1/6) 0.4^(1/4) */
    s = score_of(hyp[0], ref[0], &st);
    CHECK_CLOSE(s.score, 100.0 * exp(-1.0 / 6.0) * pow(0.4, 0.25), 1e-12, 1e-12);
    /* A longer hypothesis has no penalty: hyp and ref swapped (c = 7 > r = 6), BP = 1;
     * 6/7, 4/6, 3/5, 2/4 -> 100 (6/7 * 2/3 * 3/5 * 1/2)^(1/4) = 100 (6/35)^(1/4) */
    s = score_of(ref[0], hyp[0], &st);
    CHECK(s.bp == 1.0);
    CHECK_CLOSE(s.score, 100.0 * pow(6.0 / 35.0, 0.25), 1e-12, 1e-12);
}

static void test_clipping(void) {
    /* hyp "the the the the" vs ref "the cat": unigram "the" x4 clipped to its 1 in the ref:
     * 1 / 4; bigram the-the x3 matches nothing: 0 / 3; 0 / 2; 0 / 1. c = 4 > r = 2.
     * exp smoothing: orders 2, 3, 4 have no match: 100 / (2 * 3), 100 / (4 * 2),
     * 100 / (8 * 1). BLEU = 100 (1/4 * 1/6 * 1/8 * 1/8)^(1/4) = 100 (1/1536)^(1/4). */
    bleu_stats st;
    bleu_score s = score_of("the the the the", "the cat", &st);
    CHECK(st.correct[0] == 1 && st.total[0] == 4);
    CHECK(st.correct[1] == 0 && st.total[1] == 3);
    CHECK_CLOSE(s.precision[1], 100.0 / 6.0, 1e-12, 0);
    CHECK_CLOSE(s.precision[2], 100.0 / 8.0, 1e-12, 0);
    CHECK_CLOSE(s.precision[3], 100.0 / 8.0, 1e-12, 0);
    CHECK_CLOSE(s.score, 100.0 * pow(1.0 / 1536.0, 0.25), 1e-12, 1e-12);
}

static void test_smoothing(void) {
    /* One zero order. hyp "the cat sat under the mat" vs ref "the cat sat on the mat"
     * (6 tokens each, BP = 1):
     *   unigrams: the x2, cat, sat, mat match, under not: 5 / 6
     *   bigrams:  the-cat cat-sat the-mat match; sat-under under-the not: 3 / 5
     *   trigrams: the-cat-sat matches; cat-sat-under sat-under-the under-the-mat not: 1 / 4
     *   4-grams:  none of the 3 match: 0 / 3 -> 'exp' smoothing: 100 / (2 * 3)
     * BLEU = 100 (5/6 * 3/5 * 1/4 * 1/6)^(1/4) = 100 (1/48)^(1/4) = 37.99... */
    bleu_stats st;
    bleu_score s = score_of("the cat sat under the mat", "the cat sat on the mat", &st);
    CHECK(st.correct[3] == 0 && st.total[3] == 3);
    CHECK_CLOSE(s.precision[3], 100.0 / 6.0, 1e-12, 0);
    CHECK_CLOSE(s.score, 100.0 * pow(1.0 / 48.0, 0.25), 1e-12, 1e-12);

    /* Two zero orders: the smoothing factor doubles at each. hyp "the cat ran under a tree":
     *   unigrams: the, cat match: 2 / 6; bigrams: the-cat: 1 / 5;
     *   trigrams 0 / 4 -> 100 / (2 * 4); 4-grams 0 / 3 -> 100 / (4 * 3).
     * BLEU = 100 (1/3 * 1/5 * 1/8 * 1/12)^(1/4) = 100 (1/1440)^(1/4). */
    s = score_of("the cat ran under a tree", "the cat sat on the mat", &st);
    CHECK_CLOSE(s.precision[2], 12.5, 1e-12, 0);
    CHECK_CLOSE(s.precision[3], 100.0 / 12.0, 1e-12, 0);
    CHECK_CLOSE(s.score, 100.0 * pow(1.0 / 1440.0, 0.25), 1e-12, 1e-12);
}

static void test_zero_cases(void) {
    bleu_stats st;
    /* no n-gram of any order matches: 0, and the precisions stay 0 */
    bleu_score s = score_of("completely different", "the cat sat", &st);
    CHECK(s.score == 0.0 && s.precision[0] == 0.0);
    /* a corpus whose hypotheses are all shorter than 4 tokens has no 4-grams: sacreBLEU
     * stops at the first order with no n-grams, leaves its precision 0 and log(0) is
     * floored, so BLEU is 0 even for an exact match ("a dog" vs "a dog") */
    s = score_of("a dog", "a dog", &st);
    CHECK(st.total[2] == 0 && s.precision[0] == 100.0 && s.precision[1] == 100.0);
    CHECK(s.score == 0.0);
    /* an empty hypothesis: c = 0, BP = 0, no matches */
    s = score_of("", "the cat", &st);
    CHECK(st.sys_len == 0 && st.ref_len == 2 && s.bp == 0.0 && s.score == 0.0);
    /* an empty corpus */
    bleu_stats_clear(&st);
    CHECK(bleu_compute(&st).score == 0.0);
}

static void test_entities_in_scoring(void) {
    /* the reference's &amp; is unescaped before counting: "Tom & Jerry ." on both sides,
     * 4 tokens, 100 */
    bleu_stats st;
    bleu_score s = score_of("Tom & Jerry.", "Tom &amp; Jerry.", &st);
    CHECK(st.sys_len == 4 && st.ref_len == 4);
    CHECK_CLOSE(s.score, 100.0, 1e-12, 0);
    /* "1990-2000" vs "1990 - 2000": 13a splits the dash after a digit, so these match */
    s = score_of("from 1990-2000 on", "from 1990 - 2000 on", &st);
    CHECK_CLOSE(s.score, 100.0, 1e-12, 0);
}

/* Statistics of parts add up to the whole, bit for bit, in any order. */
static void test_stats_sum(void) {
    const char *hyp[] = {"the cat sat on the mat", "a dog runs", "the cat ran under a tree",
                         "Tom & Jerry."};
    const char *ref[] = {"the cat sat on the red mat", "a dog runs", "the cat sat on the mat",
                         "Tom &amp; Jerry."};
    bleu_stats whole, a, b;
    const double score = bleu_corpus(hyp, ref, 4, &whole);
    bleu_corpus(hyp, ref, 1, &a);
    bleu_corpus(hyp + 1, ref + 1, 3, &b);
    bleu_stats sum;
    bleu_stats_clear(&sum);
    bleu_stats_add_stats(&sum, &b);
    bleu_stats_add_stats(&sum, &a);
    CHECK(memcmp(&sum, &whole, sizeof sum) == 0);
    CHECK(bleu_compute(&sum).score == score);
    CHECK(sizeof(bleu_stats) == BLEU_STATS_WORDS * sizeof(int64_t));
}

int main(void) {
    test_tokenize_13a();
    test_perfect_match();
    test_brevity_penalty();
    test_clipping();
    test_smoothing();
    test_zero_cases();
    test_entities_in_scoring();
    test_stats_sum();
    return check_exit();
}
