/* text.c: see text.h. Files are read whole (Multi30k is a few MB), checked line by line,
 * tokenized once; the vocabularies are built by sorting the training tokens, so there is
 * no hash table and the order is a pure function of the files' bytes. */
#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rng.h"

/* A corpus file larger than this is refused: Multi30k's largest is 2 MB. */
#define TEXT_CORPUS_FILE_MAX ((size_t)1 << 30)

static const char *const special_token[TEXT_SPECIALS] = {"<pad>", "<unk>", "<bos>", "<eos>"};

/* ---------------------------------------------------------------- UTF-8 */

/* Decode the code point at s[0..n) strictly (no overlong forms, no surrogates, at most
 * U+10FFFF): its length in bytes, or 0 if the bytes there are not valid UTF-8. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    const unsigned c = s[0];
    size_t len;
    uint32_t min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2) return 0;
    if (c < 0xE0)
        len = 2, min = 0x80, *cp = c & 0x1F;
    else if (c < 0xF0)
        len = 3, min = 0x800, *cp = c & 0x0F;
    else if (c < 0xF5)
        len = 4, min = 0x10000, *cp = c & 0x07;
    else
        return 0;
    if (len > n) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        *cp = *cp << 6 | (s[k] & 0x3F);
    }
    if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return 0;
    return len;
}

static size_t utf8_encode(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12), out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18), out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F)), out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Offset of the first byte of s[0..n) that does not start a valid UTF-8 sequence, or -1. */
static int64_t utf8_invalid_at(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        const size_t len = utf8_decode(u + i, n - i, &cp);
        if (len == 0) return (int64_t)i;
        i += len;
    }
    return -1;
}

/* ---------------------------------------------------------------- tokenizer */

/* Python's str.isspace() set, the one sacreBLEU splits on. */
static int is_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ASCII punctuation; the Latin-1 marks ¡ « » ¿; General Punctuation (dashes, quotes,
 * ellipsis, ...) but for its spaces. */
static int is_punct(uint32_t c) {
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E) || c == 0xA1 || c == 0xAB || c == 0xBB || c == 0xBF ||
           (c >= 0x2010 && c <= 0x2027) || (c >= 0x2030 && c <= 0x205E);
}

static int is_word(uint32_t c) {
    return !is_space(c) && !is_punct(c);
}

static int is_ascii_digit(uint32_t c) {
    return c >= '0' && c <= '9';
}

/* ASCII A-Z and Latin-1 À..Þ (but ×) to lowercase: enough for English, German, French. */
static uint32_t lower(uint32_t c) {
    if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 0x20;
    return c;
}

typedef struct {
    uint32_t cp;
    size_t at, len; /* bytes in the line */
} line_char;

/* The line's code points; a byte that is not valid UTF-8 stands for itself as a word
 * character (files are checked before; text_encode may get anything). */
static int64_t line_chars(const char *line, size_t len, line_char *out) {
    int64_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = utf8_decode((const unsigned char *)line + i, len - i, &cp);
        if (k == 0) k = 1, cp = 0xFFFD;
        out[n++] = (line_char){cp, i, k};
        i += k;
    }
    return n;
}

/* Punctuation that stays inside a word: a hyphen or apostrophe between word characters, a
 * decimal point or thousands comma between digits. */
static int joins_word(const line_char *c, int64_t i, int64_t n) {
    if (i == 0 || i == n - 1) return 0;
    const uint32_t p = c[i - 1].cp, x = c[i].cp, q = c[i + 1].cp;
    if (x == '-' || x == '\'' || x == 0x2019) return is_word(p) && is_word(q);
    if (x == '.' || x == ',') return is_ascii_digit(p) && is_ascii_digit(q);
    return 0;
}

static void tokens_put(text_tokens *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap_bytes) {
        t->cap_bytes = (t->len + n + 1) * 2 + 256;
        t->bytes = xrealloc(t->bytes, t->cap_bytes);
    }
    memcpy(t->bytes + t->len, s, n);
    t->len += n;
}

static void tokens_begin(text_tokens *t) {
    if (t->count == t->cap_tokens) {
        t->cap_tokens = t->cap_tokens * 2 + 64;
        t->start = xrealloc(t->start, (size_t)t->cap_tokens * sizeof *t->start);
    }
    t->start[t->count] = (int64_t)t->len;
}

static void tokens_end(text_tokens *t) {
    tokens_put(t, "", 1); /* the NUL */
    t->count++;
}

void text_tokenize(const char *line, size_t len, int lowercase, text_tokens *t) {
    line_char *c = xmalloc_array(len + 1, sizeof *c);
    const int64_t n = line_chars(line, len, c);
    int open = 0; /* a word token is being written */
    for (int64_t i = 0; i < n; i++) {
        const int word = is_word(c[i].cp) || joins_word(c, i, n);
        if (open && !word) tokens_end(t), open = 0;
        if (is_space(c[i].cp)) continue;
        if (!open) tokens_begin(t), open = 1;
        if (lowercase && lower(c[i].cp) != c[i].cp) {
            char buf[4];
            tokens_put(t, buf, utf8_encode(lower(c[i].cp), buf));
        } else {
            tokens_put(t, line + c[i].at, c[i].len);
        }
        if (!word) tokens_end(t), open = 0; /* a punctuation mark is a token of its own */
    }
    if (open) tokens_end(t);
    free(c);
}

void text_tokens_free(text_tokens *t) {
    free(t->start);
    free(t->bytes);
    memset(t, 0, sizeof *t);
}

/* ---------------------------------------------------------------- detokenizer */

/* Is tok one of the space-separated tokens of set (which starts and ends with a space)? */
static int in_set(const char *tok, const char *set) {
    const size_t n = strlen(tok);
    if (n == 0) return 0;
    for (const char *p = strstr(set, tok); p; p = strstr(p + 1, tok))
        if (p[-1] == ' ' && p[n] == ' ') return 1;
    return 0;
}

/* No space before these closing marks (the non-ASCII ones: U+2019 U+201D U+00BB U+2026). */
static const char closing[] =
    " . , ! ? ; : % ) ] } ' \xE2\x80\x99 \xE2\x80\x9D \xC2\xBB \xE2\x80\xA6 ";
/* No space after these opening marks (U+00BF U+00A1 U+201E U+00AB U+2018). */
static const char opening[] = " ( [ { $ # \xC2\xBF \xC2\xA1 \xE2\x80\x9E \xC2\xAB \xE2\x80\x98 ";
/* Opening the first time, closing the next: '"' and U+201C. */
static const char toggling[] = " \" \xE2\x80\x9C ";

char *text_detokenize(const char *const *tokens, int64_t count) {
    size_t cap = 1;
    for (int64_t i = 0; i < count; i++) cap += strlen(tokens[i]) + 1;
    char *out = xmalloc(cap), *p = out;
    int glue_next = 1; /* no space before the first token */
    int quote_open = 0;
    for (int64_t i = 0; i < count; i++) {
        const char *tok = tokens[i];
        int glue_before = in_set(tok, closing), glue_after = in_set(tok, opening);
        if (in_set(tok, toggling)) {
            quote_open = !quote_open;
            glue_before = !quote_open, glue_after = quote_open;
        }
        if (!glue_next && !glue_before) *p++ = ' ';
        const size_t n = strlen(tok);
        memcpy(p, tok, n);
        p += n;
        glue_next = glue_after;
    }
    *p = '\0';
    return out;
}

/* ---------------------------------------------------------------- vocabulary */

static int strcmp_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct {
    const char *token;
    int64_t count;
} token_count;

/* count descending, then bytes ascending: a total order, so the same on every machine */
static int by_count_then_bytes(const void *a, const void *b) {
    const token_count *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return strcmp(x->token, y->token);
}

/* The distinct tokens of t with their counts (pointers into t). */
static int64_t count_tokens(const text_tokens *t, token_count **out) {
    const char **all = xmalloc_array((size_t)t->count + 1, sizeof *all);
    for (int64_t k = 0; k < t->count; k++) all[k] = t->bytes + t->start[k];
    qsort(all, (size_t)t->count, sizeof *all, strcmp_ptr);
    token_count *types = xmalloc_array((size_t)t->count + 1, sizeof *types);
    int64_t n = 0;
    for (int64_t k = 0; k < t->count; k++) {
        if (n > 0 && strcmp(types[n - 1].token, all[k]) == 0)
            types[n - 1].count++;
        else
            types[n++] = (token_count){all[k], 1};
    }
    free(all);
    *out = types;
    return n;
}

typedef struct {
    const char *token;
    int32_t id;
} token_id;

static int token_id_cmp(const void *a, const void *b) {
    return strcmp(((const token_id *)a)->token, ((const token_id *)b)->token);
}

/* The lookup index: tokens in byte order with their ids. */
static void vocab_index(text_vocab *v) {
    token_id *pairs = xmalloc_array((size_t)v->size, sizeof *pairs);
    for (int32_t i = 0; i < v->size; i++) pairs[i] = (token_id){v->token[i], i};
    qsort(pairs, (size_t)v->size, sizeof *pairs, token_id_cmp);
    v->sorted_token = xmalloc_array((size_t)v->size, sizeof *v->sorted_token);
    v->sorted_id = xmalloc_array((size_t)v->size, sizeof *v->sorted_id);
    for (int32_t i = 0; i < v->size; i++) {
        v->sorted_token[i] = (char *)pairs[i].token;
        v->sorted_id[i] = pairs[i].id;
    }
    free(pairs);
}

void text_vocab_build(const text_tokens *t, int min_freq, int32_t max_size, text_vocab *v) {
    token_count *types;
    const int64_t distinct = count_tokens(t, &types);
    int64_t kept = 0;
    for (int64_t k = 0; k < distinct; k++)
        if (types[k].count >= min_freq) types[kept++] = types[k];
    qsort(types, (size_t)kept, sizeof *types, by_count_then_bytes);
    if (max_size > 0 && kept > max_size - TEXT_SPECIALS) kept = max_size - TEXT_SPECIALS;
    if (kept < 0) kept = 0;
    v->size = (int32_t)(TEXT_SPECIALS + kept);
    v->token = xmalloc_array((size_t)v->size, sizeof *v->token);
    for (int i = 0; i < TEXT_SPECIALS; i++) v->token[i] = xstrdup(special_token[i]);
    for (int64_t k = 0; k < kept; k++) v->token[TEXT_SPECIALS + k] = xstrdup(types[k].token);
    free(types);
    vocab_index(v);
}

void text_vocab_free(text_vocab *v) {
    for (int32_t i = 0; v->token && i < v->size; i++) free(v->token[i]);
    free(v->token);
    free(v->sorted_token);
    free(v->sorted_id);
    memset(v, 0, sizeof *v);
}

int32_t text_vocab_lookup(const text_vocab *v, const char *token) {
    char *const *hit =
        bsearch(&token, v->sorted_token, (size_t)v->size, sizeof(char *), strcmp_ptr);
    return hit ? v->sorted_id[hit - v->sorted_token] : TEXT_UNK;
}

char *text_vocab_serialize(const text_vocab *v, size_t *len) {
    size_t n = 0;
    for (int32_t i = 0; i < v->size; i++) n += strlen(v->token[i]) + 1;
    char *buf = xmalloc(n + 1), *p = buf;
    for (int32_t i = 0; i < v->size; i++) {
        const size_t k = strlen(v->token[i]);
        memcpy(p, v->token[i], k);
        p[k] = '\n';
        p += k + 1;
    }
    *len = n;
    return buf;
}

/* A stored token must be what the tokenizer can make: non-empty UTF-8 without spaces. */
static int bad_vocab_token(const char *tok, size_t n) {
    if (n == 0 || memchr(tok, '\0', n) || utf8_invalid_at(tok, n) >= 0) return 1;
    line_char *c = xmalloc_array(n, sizeof *c);
    const int64_t count = line_chars(tok, n, c);
    int space = 0;
    for (int64_t i = 0; i < count; i++) space |= is_space(c[i].cp);
    free(c);
    return space;
}

/* Tokens of the flat form into v->token; -1 + err on a malformed line. */
static int parse_vocab_lines(const char *buf, size_t len, const char *what, text_vocab *v,
                             ccdl_error *err) {
    if (len == 0) return ccdl_fail(err, CCDL_ERR_INPUT, "%s: empty vocabulary", what);
    if (buf[len - 1] != '\n')
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: vocabulary does not end with a newline", what);
    int64_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
    if (lines > INT32_MAX) return ccdl_fail(err, CCDL_ERR_INPUT, "%s: vocabulary too large", what);
    v->token = xcalloc((size_t)lines, sizeof *v->token);
    for (const char *p = buf; p < buf + len;) {
        const char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        const size_t n = (size_t)(nl - p);
        if (bad_vocab_token(p, n))
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "%s: vocabulary line %d is not a token (empty, whitespace, a NUL "
                             "byte or invalid UTF-8)",
                             what, v->size + 1);
        v->token[v->size] = xmalloc(n + 1);
        memcpy(v->token[v->size], p, n);
        v->token[v->size++][n] = '\0';
        p = nl + 1;
    }
    return 0;
}

/* The specials first, every token once. */
static int check_vocab_order(const text_vocab *v, const char *what, ccdl_error *err) {
    for (int i = 0; i < TEXT_SPECIALS; i++)
        if (i >= v->size || strcmp(v->token[i], special_token[i]) != 0)
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: vocabulary line %d must be %s", what, i + 1,
                             special_token[i]);
    for (int32_t i = 1; i < v->size; i++)
        if (strcmp(v->sorted_token[i - 1], v->sorted_token[i]) == 0) {
            const int32_t a = v->sorted_id[i - 1], b = v->sorted_id[i];
            return ccdl_fail(err, CCDL_ERR_INPUT, "%s: vocabulary line %d repeats line %d (%s)",
                             what, (a > b ? a : b) + 1, (a < b ? a : b) + 1, v->sorted_token[i]);
        }
    return 0;
}

int text_vocab_parse(const char *buf, size_t len, const char *what, text_vocab *v,
                     ccdl_error *err) {
    memset(v, 0, sizeof *v);
    if (parse_vocab_lines(buf, len, what, v, err) == 0) {
        vocab_index(v);
        if (check_vocab_order(v, what, err) == 0) return 0;
    }
    text_vocab_free(v);
    return -1;
}

int text_vocab_equal(const text_vocab *a, const text_vocab *b) {
    if (a->size != b->size) return 0;
    for (int32_t i = 0; i < a->size; i++)
        if (strcmp(a->token[i], b->token[i]) != 0) return 0;
    return 1;
}

int text_vocab_check(const text_vocab *stored, const text_vocab *rebuilt, const char *what,
                     ccdl_error *err) {
    const int32_t n = stored->size < rebuilt->size ? stored->size : rebuilt->size;
    for (int32_t i = 0; i < n; i++)
        if (strcmp(stored->token[i], rebuilt->token[i]) != 0)
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "%s: the stored vocabulary differs from the one built from the "
                             "training files at id %d (stored %s, built %s)",
                             what, i, stored->token[i], rebuilt->token[i]);
    if (stored->size != rebuilt->size)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: the stored vocabulary has %d tokens, the one built from the "
                         "training files %d",
                         what, stored->size, rebuilt->size);
    return 0;
}

int64_t text_encode(const text_vocab *v, const char *sentence, int lowercase, int32_t **ids) {
    text_tokens t = {0};
    text_tokenize(sentence, strlen(sentence), lowercase, &t);
    *ids = xmalloc_array((size_t)t.count + 1, sizeof **ids);
    for (int64_t k = 0; k < t.count; k++) (*ids)[k] = text_vocab_lookup(v, t.bytes + t.start[k]);
    const int64_t n = t.count;
    text_tokens_free(&t);
    return n;
}

char *text_decode(const text_vocab *v, const int32_t *ids, int64_t count) {
    const char **tokens = xmalloc_array((size_t)count + 1, sizeof *tokens);
    int64_t n = 0;
    for (int64_t k = 0; k < count && ids[k] != TEXT_EOS; k++) {
        if (ids[k] == TEXT_PAD || ids[k] == TEXT_BOS) continue;
        tokens[n++] = ids[k] >= 0 && ids[k] < v->size ? v->token[ids[k]] : v->token[TEXT_UNK];
    }
    char *s = text_detokenize(tokens, n);
    free(tokens);
    return s;
}

/* ---------------------------------------------------------------- reading files */

/* One side (language) of a split as read: its lines and their tokens. */
typedef struct {
    char path[1200];
    char *raw; /* the file's bytes, line ends replaced by NULs */
    int64_t lines;
    const char **text;    /* [lines] */
    text_tokens tokens;   /* every line's tokens, in order */
    int64_t *first_token; /* [lines + 1] line i is tokens first_token[i] .. [i + 1] */
} text_side;

static void side_free(text_side *s) {
    free(s->raw);
    free(s->text);
    text_tokens_free(&s->tokens);
    free(s->first_token);
    memset(s, 0, sizeof *s);
}

static int read_whole_file(const char *path, char **out, size_t *len, ccdl_error *err) {
    if (access(path, F_OK) != 0 && errno == ENOENT)
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: no such file", path);
    if (check_input_file(path, err)) return -1;
    FILE *f = fopen(path, "rb");
    if (!f) return ccdl_fail(err, CCDL_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        const size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0 || n > TEXT_CORPUS_FILE_MAX) break;
    }
    const int bad = ferror(f), e = errno;
    fclose(f);
    if (bad || n > TEXT_CORPUS_FILE_MAX) {
        free(buf);
        if (bad) return ccdl_fail(err, CCDL_ERR_INPUT, "%s: read error: %s", path, strerror(e));
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: larger than %zu MiB", path,
                         TEXT_CORPUS_FILE_MAX >> 20);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Every line valid UTF-8 without NUL bytes; the line number (from 1) in the message. */
static int check_text_bytes(const char *path, const char *buf, size_t len, ccdl_error *err) {
    int64_t line = 1;
    for (const char *p = buf; p < buf + len; line++) {
        const char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        const size_t n = nl ? (size_t)(nl - p) : (size_t)(buf + len - p);
        const char *nul = memchr(p, '\0', n);
        if (nul)
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "%s: line %lld: a NUL byte at column %lld (not a text file)", path,
                             (long long)line, (long long)(nul - p + 1));
        const int64_t bad = utf8_invalid_at(p, n);
        if (bad >= 0)
            return ccdl_fail(
                err, CCDL_ERR_INPUT, "%s: line %lld: invalid UTF-8 (byte 0x%02x at column %lld)",
                path, (long long)line, (unsigned)(unsigned char)p[bad], (long long)(bad + 1));
        p += n + 1;
    }
    return 0;
}

/* Cut buf into lines in place ('\n' and a '\r' before it become NULs); a last line without
 * '\n' counts, a UTF-8 byte order mark at the start is skipped. */
static void split_lines(text_side *s, size_t len) {
    char *p = s->raw;
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    int64_t cap = 1;
    for (const char *q = p; q < s->raw + len; q++) cap += *q == '\n';
    s->text = xmalloc_array((size_t)cap, sizeof *s->text);
    s->lines = 0;
    while (p < s->raw + len) {
        char *nl = memchr(p, '\n', (size_t)(s->raw + len - p));
        char *end = nl ? nl : s->raw + len;
        if (end > p && end[-1] == '\r') end[-1] = '\0';
        *end = '\0';
        s->text[s->lines++] = p;
        p = end + 1;
    }
}

/* Read, check and tokenize one file. */
static int side_load(const char *dir, const char *split, const char *lang, int lowercase,
                     text_side *s, ccdl_error *err) {
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s/%s.%s", dir, split, lang);
    size_t len = 0;
    if (read_whole_file(s->path, &s->raw, &len, err)) return -1;
    if (len == 0 || (len == 3 && memcmp(s->raw, "\xEF\xBB\xBF", 3) == 0))
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: empty file", s->path);
    if (check_text_bytes(s->path, s->raw, len, err)) return -1;
    split_lines(s, len);
    s->first_token = xmalloc_array((size_t)s->lines + 1, sizeof *s->first_token);
    for (int64_t i = 0; i < s->lines; i++) {
        s->first_token[i] = s->tokens.count;
        text_tokenize(s->text[i], strlen(s->text[i]), lowercase, &s->tokens);
        if (s->tokens.count == s->first_token[i])
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "%s: line %lld is empty (one sentence per line, no blank lines)",
                             s->path, (long long)i + 1);
    }
    s->first_token[s->lines] = s->tokens.count;
    return 0;
}

/* ---------------------------------------------------------------- the corpus */

void text_config_default(text_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->src_lang = "en";
    cfg->tgt_lang = "de";
    cfg->min_freq = 2;
}

static int64_t side_tokens(const text_side *s, int64_t i) {
    return s->first_token[i + 1] - s->first_token[i];
}

/* Line i's ids appended at ids[*at]. */
static void encode_line(const text_side *s, int64_t i, const text_vocab *v, int32_t *ids,
                        int64_t *at) {
    for (int64_t k = s->first_token[i]; k < s->first_token[i + 1]; k++)
        ids[(*at)++] = text_vocab_lookup(v, s->tokens.bytes + s->tokens.start[k]);
}

/* The split of two read sides: pairs kept by the length filter (max_len > 0), encoded.
 * Takes over the sides' raw bytes. */
static void split_build(text_side *src, text_side *tgt, const text_vocab *sv, const text_vocab *tv,
                        int max_len, text_split *out) {
    memset(out, 0, sizeof *out);
    const int64_t n = src->lines;
    out->src_start = xmalloc_array((size_t)n + 1, sizeof *out->src_start);
    out->tgt_start = xmalloc_array((size_t)n + 1, sizeof *out->tgt_start);
    out->src_ids = xmalloc_array((size_t)src->tokens.count + 1, sizeof *out->src_ids);
    out->tgt_ids = xmalloc_array((size_t)tgt->tokens.count + 1, sizeof *out->tgt_ids);
    out->src_text = xmalloc_array((size_t)n + 1, sizeof *out->src_text);
    out->tgt_text = xmalloc_array((size_t)n + 1, sizeof *out->tgt_text);
    out->line = xmalloc_array((size_t)n + 1, sizeof *out->line);
    int64_t s_at = 0, t_at = 0, k = 0;
    for (int64_t i = 0; i < n; i++) {
        if (max_len > 0 && (side_tokens(src, i) > max_len || side_tokens(tgt, i) > max_len)) {
            out->dropped++;
            continue;
        }
        out->src_start[k] = s_at, out->tgt_start[k] = t_at;
        encode_line(src, i, sv, out->src_ids, &s_at);
        encode_line(tgt, i, tv, out->tgt_ids, &t_at);
        out->src_text[k] = src->text[i], out->tgt_text[k] = tgt->text[i];
        out->line[k++] = i + 1;
    }
    out->count = k;
    out->src_start[k] = s_at, out->tgt_start[k] = t_at;
    out->src_raw = src->raw, out->tgt_raw = tgt->raw;
    src->raw = tgt->raw = NULL;
}

static void split_free(text_split *s) {
    free(s->src_start);
    free(s->tgt_start);
    free(s->src_ids);
    free(s->tgt_ids);
    free(s->src_text);
    free(s->tgt_text);
    free(s->line);
    free(s->src_raw);
    free(s->tgt_raw);
    memset(s, 0, sizeof *s);
}

int64_t text_split_max_width(const text_split *s) {
    int64_t w = 0;
    for (int64_t i = 0; i < s->count; i++)
        if (text_pair_width(s, i) > w) w = text_pair_width(s, i);
    return w;
}

/* Both sides of one split, read and line-aligned. */
static int load_pair_of_files(const text_config *cfg, const char *split, text_side *src,
                              text_side *tgt, ccdl_error *err) {
    if (side_load(cfg->dir, split, cfg->src_lang, cfg->lowercase, src, err)) return -1;
    if (side_load(cfg->dir, split, cfg->tgt_lang, cfg->lowercase, tgt, err)) return -1;
    if (src->lines != tgt->lines)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s has %lld lines but %s has %lld (the files must be line-aligned)",
                         tgt->path, (long long)tgt->lines, src->path, (long long)src->lines);
    return 0;
}

static int check_corpus_dir(const char *dir, ccdl_error *err) {
    struct stat st;
    if (stat(dir, &st) != 0) return ccdl_fail(err, CCDL_ERR_INPUT, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: not a directory (a text corpus is a directory)",
                         dir);
    return 0;
}

int text_corpus_load(const text_config *cfg, text_corpus *c, ccdl_error *err) {
    memset(c, 0, sizeof *c);
    if (check_corpus_dir(cfg->dir, err)) return -1;
    static const char *const names[3] = {"train", "val", "test"};
    text_split *splits[3] = {&c->train, &c->val, &c->test};
    text_side src[3], tgt[3];
    memset(src, 0, sizeof src);
    memset(tgt, 0, sizeof tgt);
    int rc = 0;
    for (int k = 0; k < 3 && rc == 0; k++)
        rc = load_pair_of_files(cfg, names[k], &src[k], &tgt[k], err);
    if (rc == 0) {
        text_vocab_build(&src[0].tokens, cfg->min_freq, cfg->max_vocab, &c->src_vocab);
        text_vocab_build(&tgt[0].tokens, cfg->min_freq, cfg->max_vocab, &c->tgt_vocab);
        for (int k = 0; k < 3; k++)
            split_build(&src[k], &tgt[k], &c->src_vocab, &c->tgt_vocab, k == 0 ? cfg->max_len : 0,
                        splits[k]);
        if (c->train.count == 0)
            rc = ccdl_fail(err, CCDL_ERR_INPUT,
                           "%s/train.%s: the length filter (%d tokens) dropped every pair",
                           cfg->dir, cfg->src_lang, cfg->max_len);
    }
    for (int k = 0; k < 3; k++) side_free(&src[k]), side_free(&tgt[k]);
    if (rc) text_corpus_free(c);
    return rc;
}

void text_corpus_free(text_corpus *c) {
    text_vocab_free(&c->src_vocab);
    text_vocab_free(&c->tgt_vocab);
    split_free(&c->train);
    split_free(&c->val);
    split_free(&c->test);
}

/* ---------------------------------------------------------------- batch plans */

typedef struct {
    int64_t width, src, tgt, order;
    int32_t pair;
} pair_key;

static int pair_key_cmp(const void *a, const void *b) {
    const pair_key *x = a, *y = b;
    if (x->width != y->width) return x->width < y->width ? -1 : 1;
    if (x->src != y->src) return x->src < y->src ? -1 : 1;
    if (x->tgt != y->tgt) return x->tgt < y->tgt ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

/* The pairs sorted by (width, source, target, order[pair]) into plan->pair. */
static void sort_pairs(const text_split *s, const int32_t *order, text_plan *plan) {
    pair_key *keys = xmalloc_array((size_t)s->count + 1, sizeof *keys);
    for (int64_t i = 0; i < s->count; i++)
        keys[i] = (pair_key){text_pair_width(s, i), text_src_len(s, i), text_tgt_len(s, i),
                             order ? order[i] : i, (int32_t)i};
    qsort(keys, (size_t)s->count, sizeof *keys, pair_key_cmp);
    plan->pair = xmalloc_array((size_t)s->count + 1, sizeof *plan->pair);
    for (int64_t i = 0; i < s->count; i++) plan->pair[i] = keys[i].pair;
    free(keys);
}

/* Cut plan->pair, in order, into batches: a batch grows while rows * its widest pair stays
 * within the budget, so a pair wider than the budget ends up alone. */
static void cut_greedy(const text_split *s, int64_t budget, text_plan *plan) {
    plan->start = xmalloc_array((size_t)s->count + 2, sizeof *plan->start);
    plan->count = 0;
    int64_t rows = 0, widest = 0;
    for (int64_t i = 0; i < s->count; i++) {
        const int64_t w = text_pair_width(s, plan->pair[i]);
        const int64_t wider = w > widest ? w : widest;
        if (rows > 0 && (rows + 1) * wider > budget) rows = 0;
        if (rows == 0) plan->start[plan->count++] = i, widest = 0;
        rows++;
        if (w > widest) widest = w;
    }
    plan->start[plan->count] = s->count;
}

/* Split the batch with the most pairs (the first of equals) in two, the first half taking
 * the odd pair; -1 if every batch has one pair. */
static int split_largest_batch(text_plan *plan) {
    int64_t best = -1, most = 1;
    for (int64_t b = 0; b < plan->count; b++)
        if (plan->start[b + 1] - plan->start[b] > most)
            most = plan->start[b + 1] - plan->start[b], best = b;
    if (best < 0) return -1;
    plan->start = xrealloc(plan->start, (size_t)(plan->count + 2) * sizeof *plan->start);
    memmove(plan->start + best + 2, plan->start + best + 1,
            (size_t)(plan->count - best) * sizeof *plan->start);
    plan->start[best + 1] = plan->start[best] + (most + 1) / 2;
    plan->count++;
    return 0;
}

/* The batches in the order perm[0..count). */
static void reorder_batches(text_plan *plan, const int32_t *perm) {
    int64_t *start = xmalloc_array((size_t)plan->count + 1, sizeof *start);
    int32_t *pair = xmalloc_array((size_t)plan->start[plan->count] + 1, sizeof *pair);
    int64_t at = 0;
    for (int64_t k = 0; k < plan->count; k++) {
        const int64_t b = perm[k], n = plan->start[b + 1] - plan->start[b];
        start[k] = at;
        memcpy(pair + at, plan->pair + plan->start[b], (size_t)n * sizeof *pair);
        at += n;
    }
    start[plan->count] = at;
    free(plan->start);
    free(plan->pair);
    plan->start = start;
    plan->pair = pair;
}

static void shuffled_identity(rng_t *r, int64_t n, int32_t *out) {
    for (int64_t i = 0; i < n; i++) out[i] = (int32_t)i;
    rng_shuffle_int32(r, out, n);
}

/* The widest pair must fit the budget alone. */
static int check_budget(const text_split *s, int64_t budget, ccdl_error *err) {
    int64_t widest = -1;
    for (int64_t i = 0; i < s->count; i++)
        if (widest < 0 || text_pair_width(s, i) > text_pair_width(s, widest)) widest = i;
    if (widest >= 0 && text_pair_width(s, widest) > budget)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "token budget %lld is below the widest training pair (line %lld: %lld "
                         "columns with <bos>/<eos>); raise the budget or lower the length filter",
                         (long long)budget, (long long)s->line[widest],
                         (long long)text_pair_width(s, widest));
    return 0;
}

int text_plan_train(const text_split *train, int64_t token_budget, int workers, uint64_t seed,
                    int epoch, text_plan *plan, ccdl_error *err) {
    memset(plan, 0, sizeof *plan);
    if (workers < 1) return ccdl_fail(err, CCDL_ERR_INPUT, "workers must be at least 1");
    if (check_budget(train, token_budget, err)) return -1;
    rng_t r;
    rng_seed(&r, seed, RNG_SHUFFLE, (uint64_t)epoch, 0);
    int32_t *perm = xmalloc_array((size_t)train->count + 1, sizeof *perm);
    int32_t *order = xmalloc_array((size_t)train->count + 1, sizeof *order);
    shuffled_identity(&r, train->count, perm);
    for (int64_t k = 0; k < train->count; k++) order[perm[k]] = (int32_t)k;
    sort_pairs(train, order, plan);
    free(order);
    free(perm);
    cut_greedy(train, token_budget, plan);
    const int64_t greedy = plan->count;
    while (plan->count % workers != 0)
        if (split_largest_batch(plan)) {
            text_plan_free(plan);
            return ccdl_fail(err, CCDL_ERR_INPUT,
                             "%lld training pairs in %lld batches of token budget %lld cannot "
                             "make a multiple of %d workers' batches",
                             (long long)train->count, (long long)greedy, (long long)token_budget,
                             workers);
        }
    int32_t *batch_perm = xmalloc_array((size_t)plan->count + 1, sizeof *batch_perm);
    shuffled_identity(&r, plan->count, batch_perm);
    reorder_batches(plan, batch_perm);
    free(batch_perm);
    return 0;
}

void text_plan_eval(const text_split *split, int64_t token_budget, text_plan *plan) {
    memset(plan, 0, sizeof *plan);
    sort_pairs(split, NULL, plan);
    cut_greedy(split, token_budget, plan);
}

void text_plan_free(text_plan *plan) {
    free(plan->start);
    free(plan->pair);
    memset(plan, 0, sizeof *plan);
}

/* ---------------------------------------------------------------- batches */

/* Room for need ids in each of the n buffers sharing *cap. */
static void grow_ids(int32_t **bufs[], int n, size_t *cap, size_t need) {
    if (need <= *cap) return;
    for (int k = 0; k < n; k++) *bufs[k] = xrealloc(*bufs[k], need * sizeof **bufs[k]);
    *cap = need;
}

/* Row r: the ids, then `last` (TEXT_EOS), then padding. */
static void fill_row(int32_t *row, int cols, int32_t first, const int32_t *ids, int64_t n,
                     int32_t last) {
    int c = 0;
    if (first != TEXT_PAD) row[c++] = first;
    for (int64_t k = 0; k < n; k++) row[c++] = ids[k];
    if (last != TEXT_PAD) row[c++] = last;
    while (c < cols) row[c++] = TEXT_PAD;
}

void text_batch_fill(const text_split *split, const text_plan *plan, int64_t b, text_batch *out) {
    const int32_t *pairs = plan->pair + plan->start[b];
    const int rows = (int)(plan->start[b + 1] - plan->start[b]);
    int64_t src_cols = 0, tgt_cols = 0;
    for (int r = 0; r < rows; r++) {
        if (text_src_len(split, pairs[r]) + 1 > src_cols)
            src_cols = text_src_len(split, pairs[r]) + 1;
        if (text_tgt_len(split, pairs[r]) + 1 > tgt_cols)
            tgt_cols = text_tgt_len(split, pairs[r]) + 1;
    }
    out->rows = rows, out->src_cols = (int)src_cols, out->tgt_cols = (int)tgt_cols;
    int32_t **src_bufs[] = {&out->src}, **tgt_bufs[] = {&out->tgt_in, &out->tgt_out};
    grow_ids(src_bufs, 1, &out->cap_src, (size_t)(rows * src_cols));
    grow_ids(tgt_bufs, 2, &out->cap_tgt, (size_t)(rows * tgt_cols));
    out->src_tokens = out->tgt_tokens = 0;
    for (int r = 0; r < rows; r++) {
        const int64_t i = pairs[r];
        const int32_t *s = split->src_ids + split->src_start[i];
        const int32_t *t = split->tgt_ids + split->tgt_start[i];
        const int64_t ns = text_src_len(split, i), nt = text_tgt_len(split, i);
        fill_row(out->src + r * src_cols, (int)src_cols, TEXT_PAD, s, ns, TEXT_EOS);
        fill_row(out->tgt_in + r * tgt_cols, (int)tgt_cols, TEXT_BOS, t, nt, TEXT_PAD);
        fill_row(out->tgt_out + r * tgt_cols, (int)tgt_cols, TEXT_PAD, t, nt, TEXT_EOS);
        out->src_tokens += ns + 1;
        out->tgt_tokens += nt + 1;
    }
}

void text_batch_free(text_batch *out) {
    free(out->src);
    free(out->tgt_in);
    free(out->tgt_out);
    memset(out, 0, sizeof *out);
}
