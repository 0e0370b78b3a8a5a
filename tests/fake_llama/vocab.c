/*
 * vocab.c - the fake model's 512-token vocabulary and its greedy tokenizer.
 *
 * The word table below is the whole "model": word piece k has id 272 + k. Keep the
 * table's order stable, tests and README.md depend on the ids. The table holds
 * exactly 240 entries so that n_vocab is 512.
 */
#include "vocab.h"

#include <stdlib.h>
#include <string.h>

static const char *const special_text[FL_N_SPECIAL] = {
    "<unk>",          "<s>",            "</s>",           "<|end|>",
    "<|placeholder1|>", "<|user|>",     "<|assistant|>",  "<|system|>",
    "<|endoftext|>",  "<|placeholder2|>", "<|placeholder3|>", "<|placeholder4|>",
    "<|placeholder5|>", "<|placeholder6|>", "<|placeholder7|>", "<|placeholder8|>",
};

/* Word pieces: id = FL_WORD_BASE + index. */
static const char *const words[] = {
    /* 272 */ "\n", " ", "!", "?", ".", ",", ":", ";",
    /* 280 */ "'", "\"", "-", "(", ")", "<", ">", "|",
    /* 288 */ "/", "{", "}", "[", "]", "_", "0", "1",
    /* 296 */ "2", "3", "4", "5", "6", "7", "8", "9",
    /* 304 */ "a", "b", "c", "d", "e", "f", "g", "h",
    /* 312 */ "i", "j", "k", "l", "m", "n", "o", "p",
    /* 320 */ "q", "r", "s", "t", "u", "v", "w", "x",
    /* 328 */ "y", "z", "A", "B", "C", "D", "E", "F",
    /* 336 */ "G", "H", "I", "J", "K", "L", "M", "N",
    /* 344 */ "O", "P", "Q", "R", "S", "T", "U", "V",
    /* 352 */ "W", "X", "Y", "Z", " the", " a", " an", " of",
    /* 360 */ " to", " and", " in", " is", " it", " that", " for", " on",
    /* 368 */ " with", " as", " was", " be", " by", " at", " this", " from",
    /* 376 */ " or", " are", " hello", " Hello", "Hello", "hello", " world", "world",
    /* 384 */ " there", "there", " Hi", "Hi", " hi", "merge", "mer", "ge",
    /* 392 */ " view", " faces", "\xe3\x83\xa0" /* ム */, " COM", "azz", " peak", " solar", "cul",
    /* 400 */ "Map", " vorm", "articles", " adjacent", " birds", "iter", " Places", " Jim",
    /* 408 */ " three", " Regarding", " enjoyed", "istory", "NOT", " Japon", " destin", " Hist",
    /* 416 */ " textbox", " Ford", " Theatre", " Sar", "out", " eine", "viv", " tart",
    /* 424 */ "unix", "ection", "uni", " Mark", " clear", "igli", "Ign", " grup",
    /* 432 */ " MTV", "yme", "edu", "kazy", " equivalence", "foot", "yz", " FO",
    /* 440 */ "enn", " immer", "aw", " thick", "olean", "amount", " typo", " Kot",
    /* 448 */ "bie", " museum", " chart", " teatro", "emos", " varchar", " Pers", " boat",
    /* 456 */ "zeug", " established", " Sid", " dismiss", " cot", " Mike", " spot", " useful",
    /* 464 */ "Diff", " Stanley", "RIPT", " river", " stone", " light", " quick", " brown",
    /* 472 */ " fox", " jumps", " over", " lazy", " dog", " model", " token", " stream",
    /* 480 */ "\xc3\xa9" /* é */, " caf\xc3\xa9" /* café */,
    "\xe6\x97\xa5\xe6\x9c\xac" /* 日本 */,
    "\xe8\xaa\x9e" /* 語 */, " \xd0\xbc\xd0\xb8\xd1\x80" /* мир */,
    "\xe4\xb8\x96\xe7\x95\x8c" /* 世界 */, "\xc3\xbc" /* ü */, "\xc3\x9f" /* ß */,
    /* 488 */ "\xe2\x82\xac" /* € */, "\xce\xbb" /* λ */, " donn\xc3\xa9" "es" /* données */,
    "\xf0\x9f\x9a\x80" /* 🚀 */, "user", "assistant", "system", "end",
    /* 496 */ "im", " answer", " question", " yes", " no", " maybe", " data", " time",
    /* 504 */ " sun", " moon", " rain", " cloud", " tree", " bird", " fish", " end",
};

#define N_WORDS ((int)(sizeof(words) / sizeof(words[0])))
_Static_assert(sizeof(words) / sizeof(words[0]) == 240, "word table must hold 240 pieces");

#define N_VOCAB (FL_WORD_BASE + N_WORDS)

static unsigned char byte_piece[256];
static size_t word_len[N_WORDS];
static size_t special_len[FL_N_SPECIAL];

/* Candidates per first byte, longest first: ids of words and specials. */
static int *cand[256];
static int n_cand[256];

static int *pool;
static size_t n_pool;

static size_t tok_len(int id)
{
    return id < FL_N_SPECIAL ? special_len[id] : word_len[id - FL_WORD_BASE];
}

static const char *tok_text(int id)
{
    return id < FL_N_SPECIAL ? special_text[id] : words[id - FL_WORD_BASE];
}

static int cmp_len_desc(const void *a, const void *b)
{
    size_t la = tok_len(*(const int *)a);
    size_t lb = tok_len(*(const int *)b);

    if (la != lb)
        return la < lb ? 1 : -1;
    return *(const int *)a - *(const int *)b;
}

void fl_vocab_init(void)
{
    for (int i = 0; i < 256; i++)
        byte_piece[i] = (unsigned char)i;
    for (int i = 0; i < FL_N_SPECIAL; i++)
        special_len[i] = strlen(special_text[i]);
    for (int i = 0; i < N_WORDS; i++)
        word_len[i] = strlen(words[i]);

    for (int pass = 0; pass < 2; pass++) {
        for (int id = 0; id < N_VOCAB; id++) {
            if (fl_tok_is_byte(id))
                continue;
            unsigned char c = (unsigned char)tok_text(id)[0];
            if (pass == 0)
                n_cand[c]++;
            else
                cand[c][n_cand[c]++] = id;
        }
        if (pass == 0) {
            for (int c = 0; c < 256; c++) {
                cand[c] = n_cand[c] ? fl_xcalloc((size_t)n_cand[c], sizeof(int)) : NULL;
                n_cand[c] = 0;
            }
        }
    }
    for (int c = 0; c < 256; c++)
        if (n_cand[c] > 1)
            qsort(cand[c], (size_t)n_cand[c], sizeof(int), cmp_len_desc);

    pool = fl_xcalloc((size_t)N_WORDS, sizeof(int));
    for (int i = 0; i < N_WORDS; i++) {
        const char *w = words[i];
        if (word_len[i] < 2 || strpbrk(w, "\n<>|") != NULL)
            continue;
        pool[n_pool++] = FL_WORD_BASE + i;
    }
}

void fl_vocab_free(void)
{
    for (int c = 0; c < 256; c++) {
        free(cand[c]);
        cand[c] = NULL;
        n_cand[c] = 0;
    }
    free(pool);
    pool = NULL;
    n_pool = 0;
}

int fl_vocab_size(void)
{
    return N_VOCAB;
}

int fl_tok_valid(long long id)
{
    return id >= 0 && id < N_VOCAB;
}

int fl_tok_is_eog(int id)
{
    return id == FL_TOK_EOS || id == FL_TOK_EOT || id == FL_TOK_ENDOFTEXT;
}

int fl_tok_is_special(int id)
{
    return id >= 0 && id < FL_N_SPECIAL;
}

int fl_tok_is_byte(int id)
{
    return id >= FL_BYTE_BASE && id < FL_BYTE_BASE + 256;
}

const char *fl_tok_piece(int id, int special, size_t *len)
{
    if (fl_tok_is_special(id)) {
        *len = special ? special_len[id] : 0;
        return special ? special_text[id] : "";
    }
    if (fl_tok_is_byte(id)) {
        *len = 1;
        return (const char *)&byte_piece[id - FL_BYTE_BASE];
    }
    if (id >= FL_WORD_BASE && id < N_VOCAB) {
        *len = word_len[id - FL_WORD_BASE];
        return words[id - FL_WORD_BASE];
    }
    *len = 0;
    return "";
}

void fl_tokenize(const char *s, size_t n, int add_bos, int parse_special, fl_toks_t *out)
{
    size_t i = 0;

    if (add_bos)
        fl_toks_push(out, FL_TOK_BOS);
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        int best = -1;

        for (int k = 0; k < n_cand[c]; k++) {
            int id = cand[c][k];
            size_t l = tok_len(id);
            if (!parse_special && fl_tok_is_special(id))
                continue;
            if (l <= n - i && memcmp(s + i, tok_text(id), l) == 0) {
                best = id;
                break; /* sorted longest first */
            }
        }
        if (best < 0) {
            fl_toks_push(out, FL_BYTE_BASE + c);
            i++;
        } else {
            fl_toks_push(out, best);
            i += tok_len(best);
        }
    }
}

void fl_detokenize(const int *ids, size_t n, fl_buf_t *out)
{
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const char *p = fl_tok_piece(ids[i], 1, &l);
        fl_buf_add(out, p, l);
    }
}

const int *fl_vocab_pool(size_t *n)
{
    *n = n_pool;
    return pool;
}
