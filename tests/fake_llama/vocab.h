/*
 * vocab.h - the fake model's vocabulary and tokenizer.
 *
 * Layout (n_vocab = 512):
 *   0..15    special (control) tokens; 0 <unk>, 1 <s> (BOS), 2 </s> (EOS, EOG),
 *            3 <|end|> (EOT, EOG), 4 <|placeholder1|> (control, not EOG), 5 <|user|>,
 *            6 <|assistant|>, 7 <|system|>, 8 <|endoftext|> (EOG), 9..15 <|placeholder2..8|>
 *   16..271  byte-fallback tokens <0x00>..<0xFF>: id = 16 + byte value
 *   272..511 word pieces (see the table in vocab.c and README.md)
 *
 * Rendering: generation uses special=false (control tokens render as ""); /tokenize
 * pieces and /detokenize use special=true (control tokens render as their text).
 * The tables are immutable after fl_vocab_init(), so every function is thread-safe.
 */
#ifndef FL_VOCAB_H
#define FL_VOCAB_H

#include <stddef.h>

#include "util.h"

enum {
    FL_TOK_UNK = 0,
    FL_TOK_BOS = 1,
    FL_TOK_EOS = 2,
    FL_TOK_EOT = 3,
    FL_TOK_PLACEHOLDER1 = 4,
    FL_TOK_USER = 5,
    FL_TOK_ASSISTANT = 6,
    FL_TOK_SYSTEM = 7,
    FL_TOK_ENDOFTEXT = 8,
    FL_N_SPECIAL = 16,
    FL_BYTE_BASE = 16,
    FL_WORD_BASE = 272,
};

/* Builds the lookup tables; call once before anything else. */
void fl_vocab_init(void);
/* Frees the tables (keeps leak checkers quiet at exit). */
void fl_vocab_free(void);
int fl_vocab_size(void);

int fl_tok_valid(long long id);
int fl_tok_is_eog(int id);
int fl_tok_is_special(int id); /* ids 0..15 (control) */
int fl_tok_is_byte(int id);

/* The token's text. special=0 renders special tokens as "" (generation); special=1
 * renders them literally (/detokenize, /tokenize pieces). Byte tokens are one raw byte.
 * The returned pointer is static. */
const char *fl_tok_piece(int id, int special, size_t *len);

/*
 * Greedy longest-match tokenizer with byte fallback. parse_special recognises the text
 * of special tokens as the token itself; add_bos prepends <s>. Appends to out.
 */
void fl_tokenize(const char *s, size_t n, int add_bos, int parse_special, fl_toks_t *out);

/* Concatenated pieces (special=1) of ids; ids must be valid. Appends raw bytes. */
void fl_detokenize(const int *ids, size_t n, fl_buf_t *out);

/* The ids that default (unscripted) generation samples from: ordinary words only. */
const int *fl_vocab_pool(size_t *n);

#endif /* FL_VOCAB_H */
