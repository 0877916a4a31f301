/* test_text.c: the text corpus on small Multi30k-layout files written here: the tokenizer's
 * rules, vocabulary contents and order (counted by hand in the comments), its flat form and
 * check, encode/decode round trips, the length filter, training plans (budget never
 * exceeded, every pair once per epoch, a multiple of the workers, determinism in (seed,
 * epoch), independence of the rank layout), evaluation plans, and every bad input's
 * one-line error naming the file and line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "layout.h"
#include "text.h"

static char dir[] = "/tmp/ccdl-test-text-XXXXXX";

static void write_bytes(const char *name, const char *bytes, size_t len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(bytes, 1, len, f) == len);
    fclose(f);
}

static void write_text(const char *name, const char *text) {
    write_bytes(name, text, strlen(text));
}

/* ---------------------------------------------------------------- tokenizer */

/* tokens of line joined by '|' */
static char *tokens_of(const char *line, int lowercase) {
    text_tokens t = {0};
    text_tokenize(line, strlen(line), lowercase, &t);
    char *out = calloc(t.len + 2, 1);
    for (int64_t k = 0; k < t.count; k++) {
        if (k) strcat(out, "|");
        strcat(out, t.bytes + t.start[k]);
    }
    text_tokens_free(&t);
    return out;
}

static void expect_tokens(const char *line, int lowercase, const char *want) {
    char *got = tokens_of(line, lowercase);
    CHECK_MSG(strcmp(got, want) == 0, "tokens(\"%s\") = %s, want %s", line, got, want);
    free(got);
}

static void test_tokenizer(void) {
    expect_tokens("A man's T-shirt, 3.5 kg (approx.)!", 0,
                  "A|man's|T-shirt|,|3.5|kg|(|approx|.|)|!");
    expect_tokens("  two   spaces\tand\ttabs\r", 0, "two|spaces|and|tabs");
    expect_tokens("end- -start 'quoted' dogs'", 0, "end|-|-|start|'|quoted|'|dogs|'");
    expect_tokens("1,000,000 people, 2.", 0, "1,000,000|people|,|2|.");
    expect_tokens("\"Hi\"...", 0, "\"|Hi|\"|.|.|.");
    /* '<' is punctuation, so text never produces the special tokens */
    expect_tokens("<unk> <pad>", 0, "<|unk|>|<|pad|>");
    /* Unicode: em dash and ellipsis are punctuation, NBSP a space, U+2019 joins a word */
    expect_tokens("Stra\xC3\x9F"
                  "e\xE2\x80\x94sch\xC3\xB6n\xE2\x80\xA6",
                  0,
                  "Stra\xC3\x9F"
                  "e|\xE2\x80\x94|sch\xC3\xB6n|\xE2\x80\xA6");
    expect_tokens("a\xC2\xA0"
                  "b man\xE2\x80\x99s",
                  0, "a|b|man\xE2\x80\x99s");
    /* lowercase: ASCII and Latin-1 capitals; the multiplication sign is not a letter */
    expect_tokens("\xC3\x84RGER \xC3\x9C"
                  "ber \xC3\x96L \xC3\x97 Q",
                  1,
                  "\xC3\xA4rger|\xC3\xBC"
                  "ber|\xC3\xB6l|\xC3\x97|q");
    expect_tokens("", 0, "");
}

static void test_detokenize(void) {
    /* sentences in ordinary punctuation come back as they were */
    const char *sentences[] = {
        "A man, in a red (bright) shirt, says \"hello\": 3.5 apples!",
        "The dog's t-shirt costs $5 - or 10%.",
        "Zwei M\xC3\xA4nner [links] sehen zu; einer lacht?",
        "Is it 1,000,000... or not?",
    };
    for (size_t i = 0; i < sizeof sentences / sizeof *sentences; i++) {
        text_tokens t = {0};
        text_tokenize(sentences[i], strlen(sentences[i]), 0, &t);
        const char **tok = malloc((size_t)t.count * sizeof *tok);
        for (int64_t k = 0; k < t.count; k++) tok[k] = t.bytes + t.start[k];
        char *back = text_detokenize(tok, t.count);
        CHECK_MSG(strcmp(back, sentences[i]) == 0, "detokenize: \"%s\" -> \"%s\"", sentences[i],
                  back);
        free(back);
        free(tok);
        text_tokens_free(&t);
    }
}

/* ---------------------------------------------------------------- the small corpus */

/* Training source, counted by hand (case kept):
 *   "."  5 (lines 1-5)   dog 4 (1, 3, 4, 5)   A 3 (1, 2, 4)   cat 3 (2, 4, 5)
 *   The 2 (3, 5)   runs 2 (1, 2)   once: sleeps and a , the Dogs run !
 * min_freq 2: . dog A cat The runs; ties by bytes: "A" (0x41) < "cat", "The" < "runs".
 * Lowercased: . 5, a 4 (A x3 + a), dog 4, cat 3, the 3, runs 2 -> . a dog cat the runs.
 * Target: . 5, Hund 4, Katze 3, Ein 2, rennt 2 -> . Hund Katze Ein rennt. */
static const char train_en[] = "A dog runs.\nA cat runs.\nThe dog sleeps.\nA dog and a cat.\n"
                               "The cat, the dog.\nDogs run!\n";
static const char train_de[] = "Ein Hund rennt.\nEine Katze rennt.\nDer Hund schl\xC3\xA4"
                               "ft.\n"
                               "Ein Hund und eine Katze.\nDie Katze, der Hund.\nHunde rennen!\n";

static void write_small_corpus(void) {
    write_text("train.en", train_en);
    write_text("train.de", train_de);
    write_text("val.en", "A dog.\nThe cat runs.\n");
    write_text("val.de", "Ein Hund.\nDie Katze rennt.\n");
    /* CRLF line ends and no final newline are accepted */
    write_text("test.en", "A bird runs.\r\nThe dog, the cat and the bird.\r\nDogs!");
    write_text("test.de", "Ein Vogel rennt.\r\nDer Hund, die Katze und der Vogel.\r\nHunde!");
}

static void expect_vocab(const text_vocab *v, const char *const *want, int n) {
    CHECK_MSG(v->size == n, "vocabulary size %d, want %d", v->size, n);
    for (int i = 0; i < n && i < v->size; i++)
        CHECK_MSG(strcmp(v->token[i], want[i]) == 0, "id %d is %s, want %s", i, v->token[i],
                  want[i]);
}

static int load(text_config *cfg, text_corpus *c, ccdl_error *err) {
    cfg->dir = dir;
    return text_corpus_load(cfg, c, err);
}

static void test_vocabulary(void) {
    write_small_corpus();
    text_config cfg;
    text_config_default(&cfg);
    text_corpus c;
    ccdl_error err;
    CHECK_MSG(load(&cfg, &c, &err) == 0, "%s", err.text);
    const char *src[] = {"<pad>", "<unk>", "<bos>", "<eos>", ".", "dog", "A", "cat", "The", "runs"};
    const char *tgt[] = {"<pad>", "<unk>", "<bos>", "<eos>", ".", "Hund", "Katze", "Ein", "rennt"};
    expect_vocab(&c.src_vocab, src, 10);
    expect_vocab(&c.tgt_vocab, tgt, 9);
    CHECK(c.train.count == 6 && c.val.count == 2 && c.test.count == 3);
    CHECK(text_vocab_lookup(&c.src_vocab, "cat") == 7);
    CHECK(text_vocab_lookup(&c.src_vocab, "bird") == TEXT_UNK);
    CHECK(text_vocab_lookup(&c.src_vocab, "<eos>") == TEXT_EOS);
    /* line text for BLEU references: without the CR LF */
    CHECK(strcmp(c.test.tgt_text[1], "Der Hund, die Katze und der Vogel.") == 0);
    CHECK(strcmp(c.test.tgt_text[2], "Hunde!") == 0);
    /* encoded pairs: train line 1 "A dog runs." = A dog runs . */
    CHECK(text_src_len(&c.train, 0) == 4);
    const int32_t want0[4] = {6, 5, 9, 4};
    CHECK(memcmp(c.train.src_ids + c.train.src_start[0], want0, sizeof want0) == 0);
    /* the first test line has the OOV "bird" / "Vogel" */
    CHECK(c.test.src_ids[c.test.src_start[0] + 1] == TEXT_UNK);
    CHECK(c.test.tgt_ids[c.test.tgt_start[0] + 1] == TEXT_UNK);
    text_corpus_free(&c);

    /* lowercase */
    cfg.lowercase = 1;
    CHECK_MSG(load(&cfg, &c, &err) == 0, "%s", err.text);
    const char *lsrc[] = {"<pad>", "<unk>", "<bos>", "<eos>", ".",
                          "a",     "dog",   "cat",   "the",   "runs"};
    expect_vocab(&c.src_vocab, lsrc, 10);
    text_corpus_free(&c);

    /* max size: specials + the 3 most frequent; min_freq 1: every token */
    cfg.lowercase = 0;
    cfg.max_vocab = 7;
    CHECK_MSG(load(&cfg, &c, &err) == 0, "%s", err.text);
    expect_vocab(&c.src_vocab, src, 7);
    text_corpus_free(&c);
    cfg.max_vocab = 0;
    cfg.min_freq = 1;
    CHECK_MSG(load(&cfg, &c, &err) == 0, "%s", err.text);
    /* the 6 tokens seen twice or more, then the 8 seen once in byte order:
     * ! , Dogs a and run sleeps the (ASCII: '!' < ',' < 'D' < 'a' ...) */
    const char *all[] = {"<pad>", "<unk>", "<bos>", "<eos>", ".", "dog", "A",   "cat",    "The",
                         "runs",  "!",     ",",     "Dogs",  "a", "and", "run", "sleeps", "the"};
    expect_vocab(&c.src_vocab, all, 18);
    text_corpus_free(&c);
}

static void test_vocab_flat_form(void) {
    text_config cfg;
    text_config_default(&cfg);
    text_corpus c;
    ccdl_error err;
    CHECK_MSG(load(&cfg, &c, &err) == 0, "%s", err.text);
    size_t len;
    char *flat = text_vocab_serialize(&c.src_vocab, &len);
    const char want[] = "<pad>\n<unk>\n<bos>\n<eos>\n.\ndog\nA\ncat\nThe\nruns\n";
    CHECK(len == strlen(want) && memcmp(flat, want, len) == 0);
    text_vocab back;
    CHECK_MSG(text_vocab_parse(flat, len, "vocab/src", &back, &err) == 0, "%s", err.text);
    CHECK(text_vocab_equal(&back, &c.src_vocab));
    CHECK(text_vocab_check(&back, &c.src_vocab, "vocab/src", &err) == 0);
    CHECK(text_vocab_lookup(&back, "The") == 8);
    CHECK(!text_vocab_equal(&back, &c.tgt_vocab));
    text_vocab_free(&back);

    /* a stored vocabulary that differs: "cat" and "The" swapped, then one token short */
    char swapped[] = "<pad>\n<unk>\n<bos>\n<eos>\n.\ndog\nA\nThe\ncat\nruns\n";
    CHECK(text_vocab_parse(swapped, strlen(swapped), "vocab/src", &back, &err) == 0);
    CHECK(text_vocab_check(&back, &c.src_vocab, "vocab/src", &err) != 0);
    CHECK_MSG(strstr(err.text, "vocab/src") && strstr(err.text, "id 7 (stored The, built cat)"),
              "%s", err.text);
    text_vocab_free(&back);
    CHECK(text_vocab_parse(want, strlen(want) - 5, "vocab/src", &back, &err) == 0);
    CHECK(text_vocab_check(&back, &c.src_vocab, "vocab/src", &err) != 0);
    CHECK_MSG(strstr(err.text, "has 9 tokens, the one built from the training files 10"), "%s",
              err.text);
    text_vocab_free(&back);

    /* malformed flat forms */
    const struct {
        const char *text, *needle;
    } bad[] = {
        {"<pad>\n<unk>\n<bos>\n<eos>\nx", "does not end with a newline"},
        {"<pad>\n<unk>\n<eos>\n<bos>\nx\n", "line 3 must be <bos>"},
        {"<pad>\n<unk>\n<bos>\n<eos>\nx\ny\nx\n", "line 7 repeats line 5 (x)"},
        {"<pad>\n<unk>\n<bos>\n<eos>\n\nx\n", "line 5 is not a token"},
        {"<pad>\n<unk>\n<bos>\n<eos>\na b\n", "line 5 is not a token"},
        {"<pad>\n<unk>\n<bos>\n<eos>\n\xC3\n", "line 5 is not a token"},
        {"", "empty vocabulary"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(text_vocab_parse(bad[i].text, strlen(bad[i].text), "vocab/tgt", &back, &err) != 0);
        CHECK_MSG(strstr(err.text, "vocab/tgt") && strstr(err.text, bad[i].needle),
                  "'%s' lacks '%s'", err.text, bad[i].needle);
    }
    free(flat);
    text_corpus_free(&c);
}

static void test_encode_decode(void) {
    text_config cfg;
    text_config_default(&cfg);
    text_corpus c;
    ccdl_error err;
    CHECK_MSG(load(&cfg, &c, &err) == 0, "%s", err.text);
    int32_t *ids;
    /* A bird runs. -> A <unk> runs . = 6 1 9 4 */
    int64_t n = text_encode(&c.src_vocab, "A bird runs.", 0, &ids);
    const int32_t want[4] = {6, TEXT_UNK, 9, 4};
    CHECK(n == 4 && memcmp(ids, want, sizeof want) == 0);
    char *s = text_decode(&c.src_vocab, ids, n);
    CHECK_MSG(strcmp(s, "A <unk> runs.") == 0, "%s", s);
    free(s);
    free(ids);
    /* decode stops at <eos> and skips <bos> and <pad> */
    const int32_t out[] = {TEXT_BOS, 7, TEXT_PAD, 9, 4, TEXT_EOS, 5, 5};
    s = text_decode(&c.src_vocab, out, 8);
    CHECK_MSG(strcmp(s, "cat runs.") == 0, "%s", s);
    free(s);
    /* every training line of the target side round-trips when all its tokens are known:
     * build with min_freq 1 */
    text_corpus_free(&c);
    cfg.min_freq = 1;
    CHECK_MSG(load(&cfg, &c, &err) == 0, "%s", err.text);
    for (int64_t i = 0; i < c.train.count; i++) {
        s = text_decode(&c.tgt_vocab, c.train.tgt_ids + c.train.tgt_start[i],
                        text_tgt_len(&c.train, i));
        CHECK_MSG(strcmp(s, c.train.tgt_text[i]) == 0, "\"%s\" -> \"%s\"", c.train.tgt_text[i], s);
        free(s);
    }
    text_corpus_free(&c);
}

/* ---------------------------------------------------------------- batches */

/* A synthetic corpus of `lines` pairs: pair i has 1 + (i * 7) % 30 source words and
 * 1 + (i * 13) % 33 target words (words "wK", no punctuation: tokens = words). */
static int src_words(int i) {
    return 1 + (i * 7) % 30;
}
static int tgt_words(int i) {
    return 1 + (i * 13) % 33;
}

static void write_synthetic(int lines) {
    size_t cap = (size_t)lines * 40 * 6 + 16;
    char *en = malloc(cap), *de = malloc(cap);
    size_t a = 0, b = 0;
    for (int i = 0; i < lines; i++) {
        for (int k = 0; k < src_words(i); k++)
            a += (size_t)snprintf(en + a, cap - a, "%sw%d", k ? " " : "", (i + k) % 50);
        for (int k = 0; k < tgt_words(i); k++)
            b += (size_t)snprintf(de + b, cap - b, "%sv%d", k ? " " : "", (i * 3 + k) % 60);
        en[a++] = '\n', de[b++] = '\n';
    }
    write_bytes("train.en", en, a);
    write_bytes("train.de", de, b);
    write_bytes("val.en", en, a);
    write_bytes("val.de", de, b);
    write_bytes("test.en", en, a);
    write_bytes("test.de", de, b);
    free(en);
    free(de);
}

/* Checks of one filled batch against the split: shapes, contents, specials, padding. */
static void check_batch(const text_split *s, const text_plan *p, int64_t b, const text_batch *x) {
    int ok = 1;
    int64_t src_tokens = 0, tgt_tokens = 0;
    for (int r = 0; r < x->rows; r++) {
        const int64_t i = p->pair[p->start[b] + r];
        const int64_t ns = text_src_len(s, i), nt = text_tgt_len(s, i);
        const int32_t *srow = x->src + r * x->src_cols;
        const int32_t *irow = x->tgt_in + r * x->tgt_cols, *orow = x->tgt_out + r * x->tgt_cols;
        ok &= memcmp(srow, s->src_ids + s->src_start[i], (size_t)ns * 4) == 0;
        ok &= srow[ns] == TEXT_EOS;
        for (int c = (int)ns + 1; c < x->src_cols; c++) ok &= srow[c] == TEXT_PAD;
        ok &= irow[0] == TEXT_BOS;
        ok &= memcmp(irow + 1, s->tgt_ids + s->tgt_start[i], (size_t)nt * 4) == 0;
        ok &= memcmp(orow, s->tgt_ids + s->tgt_start[i], (size_t)nt * 4) == 0;
        ok &= orow[nt] == TEXT_EOS;
        for (int c = (int)nt + 1; c < x->tgt_cols; c++)
            ok &= irow[c] == TEXT_PAD && orow[c] == TEXT_PAD;
        src_tokens += ns + 1, tgt_tokens += nt + 1;
    }
    CHECK_MSG(ok, "batch %lld contents", (long long)b);
    CHECK(x->src_tokens == src_tokens && x->tgt_tokens == tgt_tokens);
}

static int64_t batch_width(const text_batch *x) {
    return x->src_cols > x->tgt_cols ? x->src_cols : x->tgt_cols;
}

static int same_plan(const text_plan *a, const text_plan *b) {
    return a->count == b->count &&
           memcmp(a->start, b->start, (size_t)(a->count + 1) * sizeof *a->start) == 0 &&
           memcmp(a->pair, b->pair, (size_t)a->start[a->count] * sizeof *a->pair) == 0;
}

static void test_length_filter_and_plans(void) {
    const int lines = 500;
    write_synthetic(lines);
    text_config cfg;
    text_config_default(&cfg);
    cfg.max_len = 25;
    text_corpus c;
    ccdl_error err;
    CHECK_MSG(load(&cfg, &c, &err) == 0, "%s", err.text);
    int kept = 0;
    for (int i = 0; i < lines; i++) kept += src_words(i) <= 25 && tgt_words(i) <= 25;
    CHECK(c.train.count == kept && c.train.dropped == lines - kept);
    CHECK(c.val.count == lines && c.val.dropped == 0); /* evaluation keeps every pair */
    CHECK(text_split_max_width(&c.train) == 26 && text_split_max_width(&c.val) == 34);
    /* line numbers survive the filter */
    for (int64_t k = 0; k < c.train.count; k++) {
        const int i = (int)c.train.line[k] - 1;
        CHECK(text_src_len(&c.train, k) == src_words(i) &&
              text_tgt_len(&c.train, k) == tgt_words(i));
    }

    const int64_t budget = 200;
    const int workers = 4;
    text_plan p0, again, p1, other_seed;
    CHECK_MSG(text_plan_train(&c.train, budget, workers, 7, 0, &p0, &err) == 0, "%s", err.text);
    CHECK(p0.count % workers == 0 && text_plan_steps(&p0, workers) == p0.count / workers);
    /* every pair exactly once; the budget kept; contents right */
    int *seen = calloc((size_t)c.train.count, sizeof *seen);
    text_batch x = {0};
    int64_t real = 0, padded = 0;
    for (int64_t b = 0; b < p0.count; b++) {
        for (int64_t k = p0.start[b]; k < p0.start[b + 1]; k++) seen[p0.pair[k]]++;
        text_batch_fill(&c.train, &p0, b, &x);
        CHECK_MSG(x.rows * batch_width(&x) <= budget, "batch %lld: %d x %lld", (long long)b, x.rows,
                  (long long)batch_width(&x));
        check_batch(&c.train, &p0, b, &x);
        real += x.src_tokens, padded += (int64_t)x.rows * x.src_cols;
    }
    int once = 1;
    for (int64_t i = 0; i < c.train.count; i++) once &= seen[i] == 1;
    CHECK_MSG(once, "a training pair is not in exactly one batch");
    /* sorting by length keeps padding small: sources fill most of their rows */
    CHECK_MSG(real > 0.6 * padded, "source fill %lld of %lld", (long long)real, (long long)padded);
    /* same (seed, epoch): the same plan; another epoch or seed: another order, same pairs */
    CHECK(text_plan_train(&c.train, budget, workers, 7, 0, &again, &err) == 0);
    CHECK(same_plan(&p0, &again));
    CHECK(text_plan_train(&c.train, budget, workers, 7, 1, &p1, &err) == 0);
    CHECK(!same_plan(&p0, &p1) && p1.start[p1.count] == c.train.count);
    CHECK(text_plan_train(&c.train, budget, workers, 8, 0, &other_seed, &err) == 0);
    CHECK(!same_plan(&p0, &other_seed));
    text_plan_free(&again);
    text_plan_free(&p1);
    text_plan_free(&other_seed);
    text_plan_free(&p0);

    /* a number of workers that needs batches split: still every pair once, a multiple */
    for (int n = 1; n <= 13; n++) {
        text_plan p;
        CHECK_MSG(text_plan_train(&c.train, budget, n, 3, 2, &p, &err) == 0, "%s", err.text);
        memset(seen, 0, (size_t)c.train.count * sizeof *seen);
        for (int64_t k = 0; k < p.start[p.count]; k++) seen[p.pair[k]]++;
        once = p.start[p.count] == c.train.count && p.count % n == 0;
        for (int64_t i = 0; i < c.train.count; i++) once &= seen[i] == 1;
        for (int64_t b = 0; b < p.count; b++) once &= p.start[b + 1] > p.start[b];
        CHECK_MSG(once, "%d workers: %lld batches", n, (long long)p.count);
        text_plan_free(&p);
    }

    /* a budget below the widest pair names the pair's line */
    CHECK(text_plan_train(&c.train, 25, workers, 7, 0, &p0, &err) != 0);
    CHECK_MSG(strstr(err.text, "token budget 25 is below the widest training pair (line") &&
                  strstr(err.text, "26 columns"),
              "%s", err.text);
    free(seen);
    text_batch_free(&x);
    text_corpus_free(&c);
}

/* The batches a worker sees do not depend on how many ranks host the workers: every
 * "rank" of layouts with P = 1, 2, 4 (and 8) builds its own plan and fills its local
 * workers' batches; the arrays must equal those of the one-rank layout. */
static uint64_t digest(const text_batch *x) {
    uint64_t h = 1469598103934665603ULL;
    const int32_t *arrays[3] = {x->src, x->tgt_in, x->tgt_out};
    const int64_t sizes[3] = {(int64_t)x->rows * x->src_cols, (int64_t)x->rows * x->tgt_cols,
                              (int64_t)x->rows * x->tgt_cols};
    for (int a = 0; a < 3; a++)
        for (int64_t k = 0; k < sizes[a]; k++) h = (h ^ (uint32_t)arrays[a][k]) * 1099511628211ULL;
    return h ^ (uint64_t)x->rows << 32 ^ (uint64_t)x->src_cols << 16 ^ (uint64_t)x->tgt_cols;
}

static void test_rank_layouts(void) {
    text_config cfg;
    text_config_default(&cfg);
    cfg.max_len = 30;
    text_corpus c;
    ccdl_error err;
    CHECK_MSG(load(&cfg, &c, &err) == 0, "%s", err.text);
    const int n = 8, epochs = 2, max_steps = 64;
    const int ranks_list[] = {1, 2, 4, 8};
    uint64_t want[2][8][64] = {{{0}}};
    int64_t steps_want = -1;
    for (size_t li = 0; li < sizeof ranks_list / sizeof *ranks_list; li++) {
        const int P = ranks_list[li];
        int same = 1;
        for (int rank = 0; rank < P; rank++) {
            layout l;
            CHECK(layout_init(&l, n, P, rank, &err) == 0);
            text_batch x = {0};
            for (int e = 0; e < epochs; e++) {
                text_plan p;
                CHECK(text_plan_train(&c.train, 300, n, 11, e, &p, &err) == 0);
                const int64_t steps = text_plan_steps(&p, n);
                if (steps_want < 0) steps_want = steps;
                same &= steps == steps_want && steps <= max_steps;
                for (int w = l.first; w < l.first + l.per_rank; w++)
                    for (int64_t s = 0; s < steps && s < max_steps; s++) {
                        text_batch_fill(&c.train, &p, text_plan_batch(n, w, s), &x);
                        if (P == 1)
                            want[e][w][s] = digest(&x);
                        else
                            same &= want[e][w][s] == digest(&x);
                    }
                text_plan_free(&p);
            }
            text_batch_free(&x);
        }
        CHECK_MSG(same, "%d ranks: a worker's batches differ from the one-rank layout's", P);
    }
    /* the workers of a step take different batches */
    CHECK(want[0][0][0] != want[0][1][0] && want[0][0][0] != want[1][0][0]);
    text_corpus_free(&c);
}

static void test_eval_plan(void) {
    text_config cfg;
    text_config_default(&cfg);
    text_corpus c;
    ccdl_error err;
    CHECK_MSG(load(&cfg, &c, &err) == 0, "%s", err.text);
    /* the synthetic corpus of test_length_filter_and_plans: val is unfiltered, its pairs
     * are up to 34 columns wide; with budget 30 the pairs 31..34 wide are alone */
    text_plan p;
    text_plan_eval(&c.val, 30, &p);
    int *seen = calloc((size_t)c.val.count, sizeof *seen);
    text_batch x = {0};
    int alone_ok = 1, within = 1, sorted = 1;
    int64_t last_width = 0;
    for (int64_t b = 0; b < p.count; b++) {
        for (int64_t k = p.start[b]; k < p.start[b + 1]; k++) seen[p.pair[k]]++;
        text_batch_fill(&c.val, &p, b, &x);
        check_batch(&c.val, &p, b, &x);
        if (batch_width(&x) > 30)
            alone_ok &= x.rows == 1;
        else
            within &= x.rows * batch_width(&x) <= 30;
        sorted &= batch_width(&x) >= last_width;
        last_width = batch_width(&x);
    }
    int once = 1;
    for (int64_t i = 0; i < c.val.count; i++) once &= seen[i] == 1;
    CHECK(once && alone_ok && within && sorted);
    text_plan q;
    text_plan_eval(&c.val, 30, &q);
    CHECK(same_plan(&p, &q));
    text_plan_free(&q);
    text_plan_free(&p);
    text_batch_free(&x);
    free(seen);
    /* too few pairs for the workers: the small corpus's pairs are 4, 5, 5, 5, 7, 7 columns
     * wide, so budget 7 puts each alone: 6 batches serve 3 workers (or 1, 2, 6), not 4 or 7 */
    cfg.max_len = 0;
    text_corpus_free(&c);
    write_small_corpus();
    CHECK_MSG(load(&cfg, &c, &err) == 0, "%s", err.text);
    CHECK(text_plan_train(&c.train, 7, 4, 1, 0, &p, &err) != 0);
    CHECK_MSG(strstr(err.text, "6 training pairs in 6 batches of token budget 7 cannot make a "
                               "multiple of 4 workers' batches"),
              "%s", err.text);
    CHECK(text_plan_train(&c.train, 7, 3, 1, 0, &p, &err) == 0 && p.count == 6);
    text_plan_free(&p);
    CHECK(text_plan_train(&c.train, 7, 7, 1, 0, &p, &err) != 0);
    text_corpus_free(&c);
}

/* ---------------------------------------------------------------- bad input */

static void expect_error(const char *needle) {
    text_config cfg;
    text_config_default(&cfg);
    text_corpus c;
    ccdl_error err;
    CHECK(load(&cfg, &c, &err) != 0);
    CHECK(err.kind == CCDL_ERR_INPUT);
    CHECK_MSG(strstr(err.text, needle) != NULL, "'%s' lacks '%s'", err.text, needle);
    CHECK_MSG(strchr(err.text, '\n') == NULL, "not one line: '%s'", err.text);
}

static void test_bad_input(void) {
    char path[512], want[600];
    write_small_corpus();
    snprintf(path, sizeof path, "%s/val.de", dir);
    unlink(path);
    snprintf(want, sizeof want, "%s/val.de: no such file", dir);
    expect_error(want);

    write_small_corpus();
    write_text("test.de", "Ein Vogel rennt.\nHunde!\n");
    snprintf(want, sizeof want, "%s/test.de has 2 lines but %s/test.en has 3", dir, dir);
    expect_error(want);

    write_small_corpus();
    write_text("train.en", "A dog runs.\nA \xC3\x28 cat.\n");
    snprintf(want, sizeof want, "%s/train.en: line 2: invalid UTF-8 (byte 0xc3 at column 3)", dir);
    expect_error(want);
    write_text("train.en", "ok\nok\nan overlong \xC0\xAF slash\n");
    expect_error("train.en: line 3: invalid UTF-8 (byte 0xc0 at column 13)");
    write_text("train.en", "a surrogate \xED\xA0\x80\n");
    expect_error("train.en: line 1: invalid UTF-8 (byte 0xed at column 13)");
    write_text("train.en", "cut at the end \xE2\x82");
    expect_error("train.en: line 1: invalid UTF-8 (byte 0xe2 at column 16)");

    write_small_corpus();
    write_text("val.en", "");
    snprintf(want, sizeof want, "%s/val.en: empty file", dir);
    expect_error(want);

    write_small_corpus();
    write_bytes("train.de", "Ein Hund.\nzwei\nein \0 NUL\n", 25);
    expect_error("train.de: line 3: a NUL byte at column 5 (not a text file)");

    write_small_corpus();
    write_text("test.en", "A bird.\n   \nDogs!\n");
    expect_error("test.en: line 2 is empty");
    write_text("test.en", "A bird.\nDogs!\nMore.\n\n");
    expect_error("test.en: line 4 is empty");

    /* a directory where a file should be, and a missing corpus directory */
    write_small_corpus();
    snprintf(path, sizeof path, "%s/train.en", dir);
    unlink(path);
    CHECK(mkdir(path, 0700) == 0);
    expect_error("train.en: is a directory");
    rmdir(path);
    write_small_corpus();

    text_config cfg;
    text_config_default(&cfg);
    cfg.dir = "/nonexistent/multi30k";
    text_corpus c;
    ccdl_error err;
    CHECK(text_corpus_load(&cfg, &c, &err) != 0);
    CHECK_MSG(strstr(err.text, "/nonexistent/multi30k: No such file or directory"), "%s", err.text);

    /* other language suffixes */
    cfg.dir = dir;
    cfg.src_lang = "de", cfg.tgt_lang = "fr";
    CHECK(text_corpus_load(&cfg, &c, &err) != 0);
    CHECK_MSG(strstr(err.text, "train.fr: no such file"), "%s", err.text);
    cfg.tgt_lang = "en";
    CHECK_MSG(text_corpus_load(&cfg, &c, &err) == 0, "%s", err.text);
    CHECK(text_vocab_lookup(&c.tgt_vocab, "dog") == 5 &&
          text_vocab_lookup(&c.src_vocab, "Hund") == 5);
    text_corpus_free(&c);

    /* a length filter that keeps nothing */
    cfg.src_lang = "en", cfg.tgt_lang = "de";
    cfg.max_len = 1;
    CHECK(text_corpus_load(&cfg, &c, &err) != 0);
    CHECK_MSG(strstr(err.text, "train.en: the length filter (1 tokens) dropped every pair"), "%s",
              err.text);
}

int main(void) {
    CHECK(mkdtemp(dir) != NULL);
    test_tokenizer();
    test_detokenize();
    test_vocabulary();
    test_vocab_flat_form();
    test_encode_decode();
    test_length_filter_and_plans();
    test_rank_layouts();
    test_eval_plan();
    test_bad_input();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return check_exit();
}
