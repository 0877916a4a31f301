/* bleu.c: see bleu.h. The 13a rules are regular-expression substitutions in sacreBLEU; here
 * each is one left-to-right pass that, like Python's re.sub, tries the pattern at each
 * character and, after a match, continues after the matched text. Characters are UTF-8
 * code points (a Python str's characters), so "not a digit" consumes a whole code point. */
#include "bleu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---------------------------------------------------------------- growing strings */

typedef struct {
    char *p;
    size_t len, cap;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_putc(strbuf *b, char c) {
    sb_put(b, &c, 1);
}

/* An empty buffer with room for about n bytes. */
static strbuf sb_new(size_t n) {
    strbuf b = {xmalloc(n + 1), 0, n + 1};
    b.p[0] = '\0';
    return b;
}

/* ---------------------------------------------------------------- code points */

/* Bytes of the UTF-8 sequence starting at s: 2..4 for a well-formed lead byte followed by
 * its continuation bytes, else 1 (an ASCII byte, or a stray byte taken on its own). */
static size_t char_len(const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    size_t n = u[0] >= 0xF0 && u[0] < 0xF8 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC0 ? 2 : 1;
    for (size_t k = 1; k < n; k++)
        if ((u[k] & 0xC0) != 0x80) return 1;
    return n;
}

static uint32_t code_point(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 1) return u[0];
    uint32_t c = u[0] & (0x7F >> n);
    for (size_t k = 1; k < n; k++) c = c << 6 | (u[k] & 0x3F);
    return c;
}

/* Python's str.isspace(), which str.split() and str.rstrip() use. */
static int py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* ---------------------------------------------------------------- 13a passes */

/* Copy of s without its trailing (Python) whitespace: sacreBLEU's sent.rstrip(). */
static char *rstrip_copy(const char *s) {
    size_t end = 0;
    for (size_t i = 0; s[i];) {
        size_t n = char_len(s + i);
        i += n;
        if (!py_space(code_point(s + i - n, n))) end = i;
    }
    char *out = xmalloc(end + 1);
    memcpy(out, s, end);
    out[end] = '\0';
    return out;
}

/* str.replace(from, to): non-overlapping occurrences, left to right. Frees s. */
static char *replace_all(char *s, const char *from, const char *to) {
    if (!strstr(s, from)) return s;
    const size_t nf = strlen(from), nt = strlen(to);
    strbuf b = sb_new(strlen(s));
    const char *p = s;
    for (const char *hit; (hit = strstr(p, from)) != NULL; p = hit + nf) {
        sb_put(&b, p, (size_t)(hit - p));
        sb_put(&b, to, nt);
    }
    sb_put(&b, p, strlen(p));
    free(s);
    return b.p;
}

/* The characters mteval-v13a splits off everywhere: the ASCII ranges { .. ~, [ .. `,
 * space .. &, ( .. +, : .. @ and '/'. Not: ' , - . digits letters. */
static int split_always(char c) {
    return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
           (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}

/* ([{-~[-` -&(-+:-@/]) -> " \1 " */
static char *pass_symbols(char *s) {
    strbuf b = sb_new(strlen(s) * 2);
    for (const char *p = s; *p; p++) {
        if (split_always(*p)) {
            const char t[3] = {' ', *p, ' '};
            sb_put(&b, t, 3);
        } else {
            sb_putc(&b, *p);
        }
    }
    free(s);
    return b.p;
}

static int period_comma(char c) {
    return c == '.' || c == ',';
}

/* ([^0-9])([.,]) -> "\1 \2 ": a period or comma not preceded by a digit. */
static char *pass_period_after_nondigit(char *s) {
    strbuf b = sb_new(strlen(s) * 2);
    for (const char *p = s; *p;) {
        const size_t n = char_len(p);
        if (!is_digit(*p) && period_comma(p[n])) {
            sb_put(&b, p, n);
            const char t[3] = {' ', p[n], ' '};
            sb_put(&b, t, 3);
            p += n + 1;
        } else {
            sb_put(&b, p, n);
            p += n;
        }
    }
    free(s);
    return b.p;
}

/* ([.,])([^0-9]) -> " \1 \2": a period or comma not followed by a digit. */
static char *pass_period_before_nondigit(char *s) {
    strbuf b = sb_new(strlen(s) * 2);
    for (const char *p = s; *p;) {
        if (period_comma(p[0]) && p[1] && !is_digit(p[1])) {
            const size_t n = char_len(p + 1);
            const char t[3] = {' ', p[0], ' '};
            sb_put(&b, t, 3);
            sb_put(&b, p + 1, n);
            p += 1 + n;
        } else {
            const size_t n = char_len(p);
            sb_put(&b, p, n);
            p += n;
        }
    }
    free(s);
    return b.p;
}

/* ([0-9])(-) -> "\1 \2 ": a dash after a digit. */
static char *pass_dash_after_digit(char *s) {
    strbuf b = sb_new(strlen(s) * 2);
    for (const char *p = s; *p;) {
        if (is_digit(p[0]) && p[1] == '-') {
            const char t[4] = {p[0], ' ', '-', ' '};
            sb_put(&b, t, 4);
            p += 2;
        } else {
            sb_putc(&b, *p++);
        }
    }
    free(s);
    return b.p;
}

/* ' '.join(s.split()): runs of Python whitespace become one space, none at the ends. */
static char *squeeze_spaces(char *s) {
    strbuf b = sb_new(strlen(s));
    int gap = 0;
    for (const char *p = s; *p;) {
        const size_t n = char_len(p);
        if (py_space(code_point(p, n))) {
            gap = 1;
        } else {
            if (gap && b.len > 0) sb_putc(&b, ' ');
            gap = 0;
            sb_put(&b, p, n);
        }
        p += n;
    }
    free(s);
    return b.p;
}

char *bleu_tokenize_13a(const char *line) {
    char *s = rstrip_copy(line);
    s = replace_all(s, "<skipped>", "");
    s = replace_all(s, "-\n", "");
    s = replace_all(s, "\n", " ");
    s = replace_all(s, "&quot;", "\"");
    s = replace_all(s, "&amp;", "&");
    s = replace_all(s, "&lt;", "<");
    s = replace_all(s, "&gt;", ">");
    /* the line is padded with a space on both sides before the substitutions, so a period
     * at either end has a neighbour that is not a digit */
    strbuf padded = sb_new(strlen(s) + 2);
    sb_putc(&padded, ' ');
    sb_put(&padded, s, strlen(s));
    sb_putc(&padded, ' ');
    free(s);
    s = pass_symbols(padded.p);
    s = pass_period_after_nondigit(s);
    s = pass_period_before_nondigit(s);
    s = pass_dash_after_digit(s);
    return squeeze_spaces(s);
}

/* ---------------------------------------------------------------- n-gram statistics */

typedef struct {
    const char *text;
    size_t len;
    int64_t slot; /* position in the pair's token array (hypothesis first, then reference) */
} token_ref;

static int token_cmp(const void *a, const void *b) {
    const token_ref *x = a, *y = b;
    const size_t n = x->len < y->len ? x->len : y->len;
    const int c = memcmp(x->text, y->text, n);
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

/* Split a 13a-tokenized string (single spaces) into tokens appended to refs. */
static int64_t split_tokens(const char *s, token_ref *refs, int64_t first) {
    int64_t count = 0;
    for (const char *p = s; *p;) {
        const char *end = strchr(p, ' ');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        refs[first + count] = (token_ref){p, len, first + count};
        count++;
        p += len;
        if (*p == ' ') p++;
    }
    return count;
}

static int64_t count_spaces(const char *s) {
    int64_t n = 0;
    for (; *s; s++) n += *s == ' ';
    return n;
}

/* An n-gram as the ids of its tokens (ids from 1; unused orders 0), compared as a whole. */
typedef struct {
    int64_t id[BLEU_ORDER];
} ngram_key;

static int ngram_cmp(const void *a, const void *b) {
    const ngram_key *x = a, *y = b;
    for (int k = 0; k < BLEU_ORDER; k++)
        if (x->id[k] != y->id[k]) return x->id[k] < y->id[k] ? -1 : 1;
    return 0;
}

/* The sorted n-grams of order n of ids[0..len); returns how many (0 if len < n). */
static int64_t sorted_ngrams(const int64_t *ids, int64_t len, int n, ngram_key *out) {
    const int64_t count = len >= n ? len - n + 1 : 0;
    for (int64_t i = 0; i < count; i++) {
        memset(&out[i], 0, sizeof out[i]);
        for (int k = 0; k < n; k++) out[i].id[k] = ids[i + k];
    }
    qsort(out, (size_t)count, sizeof *out, ngram_cmp);
    return count;
}

/* Sum over distinct hypothesis n-grams of min(count in hyp, count in ref): a merge of the
 * two sorted lists. */
static int64_t clipped_matches(const ngram_key *hyp, int64_t nh, const ngram_key *ref, int64_t nr) {
    int64_t matches = 0, i = 0, j = 0;
    while (i < nh && j < nr) {
        const int c = ngram_cmp(&hyp[i], &ref[j]);
        if (c < 0) {
            i++;
        } else if (c > 0) {
            j++;
        } else {
            int64_t ch = 0, cr = 0;
            const ngram_key key = hyp[i];
            while (i < nh && ngram_cmp(&hyp[i], &key) == 0) i++, ch++;
            while (j < nr && ngram_cmp(&ref[j], &key) == 0) j++, cr++;
            matches += ch < cr ? ch : cr;
        }
    }
    return matches;
}

/* Give equal tokens of the pair equal ids: sort all tokens by bytes, number the runs. */
static void intern_tokens(token_ref *tokens, int64_t count, int64_t *ids) {
    qsort(tokens, (size_t)count, sizeof *tokens, token_cmp);
    int64_t id = 0;
    for (int64_t i = 0; i < count; i++) {
        if (i == 0 || token_cmp(&tokens[i - 1], &tokens[i]) != 0) id++;
        ids[tokens[i].slot] = id;
    }
}

void bleu_stats_clear(bleu_stats *s) {
    memset(s, 0, sizeof *s);
}

void bleu_stats_add(bleu_stats *s, const char *hypothesis, const char *reference) {
    char *hyp = bleu_tokenize_13a(hypothesis), *ref = bleu_tokenize_13a(reference);
    const int64_t cap = count_spaces(hyp) + count_spaces(ref) + 2;
    token_ref *tokens = xmalloc_array((size_t)cap, sizeof *tokens);
    const int64_t nh = split_tokens(hyp, tokens, 0);
    const int64_t nr = split_tokens(ref, tokens, nh);
    int64_t *ids = xmalloc_array((size_t)(nh + nr + 1), sizeof *ids);
    intern_tokens(tokens, nh + nr, ids);
    ngram_key *hk = xmalloc_array((size_t)(nh + 1), sizeof *hk);
    ngram_key *rk = xmalloc_array((size_t)(nr + 1), sizeof *rk);
    s->sys_len += nh;
    s->ref_len += nr; /* one reference: the closest reference length is its length */
    for (int n = 1; n <= BLEU_ORDER; n++) {
        const int64_t ch = sorted_ngrams(ids, nh, n, hk);
        const int64_t cr = sorted_ngrams(ids + nh, nr, n, rk);
        s->total[n - 1] += ch;
        s->correct[n - 1] += clipped_matches(hk, ch, rk, cr);
    }
    free(hk);
    free(rk);
    free(ids);
    free(tokens);
    free(hyp);
    free(ref);
}

void bleu_stats_add_stats(bleu_stats *into, const bleu_stats *from) {
    into->sys_len += from->sys_len;
    into->ref_len += from->ref_len;
    for (int k = 0; k < BLEU_ORDER; k++) {
        into->correct[k] += from->correct[k];
        into->total[k] += from->total[k];
    }
}

/* sacreBLEU's my_log: log(0) is floored at -9999999999, so a zero precision gives a score
 * of exactly 0 after the exponential instead of a NaN. */
static double floored_log(double x) {
    return x == 0.0 ? -9999999999.0 : log(x);
}

/* The operations and their order follow sacreBLEU's compute_bleu, so the doubles agree
 * bit for bit with it. */
bleu_score bleu_compute(const bleu_stats *s) {
    bleu_score out = {0};
    if (s->sys_len < s->ref_len)
        out.bp = s->sys_len > 0 ? exp(1.0 - (double)s->ref_len / (double)s->sys_len) : 0.0;
    else
        out.bp = 1.0;
    int any = 0;
    for (int k = 0; k < BLEU_ORDER; k++) any |= s->correct[k] != 0;
    if (!any) return out; /* no match at any order: 0, precisions 0 */
    double smooth = 1.0;
    for (int k = 0; k < BLEU_ORDER; k++) {
        if (s->total[k] == 0) break; /* this order and the higher ones keep precision 0 */
        if (s->correct[k] == 0) {
            smooth *= 2.0;
            out.precision[k] = 100.0 / (smooth * (double)s->total[k]);
        } else {
            out.precision[k] = 100.0 * (double)s->correct[k] / (double)s->total[k];
        }
    }
    double log_sum = 0.0;
    for (int k = 0; k < BLEU_ORDER; k++) log_sum += floored_log(out.precision[k]);
    out.score = out.bp * exp(log_sum / BLEU_ORDER);
    return out;
}

double bleu_corpus(const char *const *hypotheses, const char *const *references, int64_t count,
                   bleu_stats *stats) {
    bleu_stats s;
    bleu_stats_clear(&s);
    for (int64_t i = 0; i < count; i++) bleu_stats_add(&s, hypotheses[i], references[i]);
    if (stats) *stats = s;
    return bleu_compute(&s).score;
}
