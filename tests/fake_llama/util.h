/*
 * util.h - small helpers shared by the fake-llama files: a growable byte buffer
 * (fl_buf_t), a growable token-id vector (fl_toks_t), UTF-8 checks in the exact
 * flavours llama-server uses, clocks, and abort-on-OOM allocation.
 *
 * Nothing here is thread-aware; every object belongs to one thread at a time.
 */
#ifndef FL_UTIL_H
#define FL_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Growable byte buffer; p is always NUL-terminated once anything was added. */
typedef struct fl_buf {
    char *p;
    size_t n;
    size_t cap;
} fl_buf_t;

void fl_buf_add(fl_buf_t *b, const void *data, size_t n);
void fl_buf_adds(fl_buf_t *b, const char *s);
void fl_buf_addc(fl_buf_t *b, char c);
void fl_buf_addf(fl_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fl_buf_truncate(fl_buf_t *b, size_t n);
/* Hands the content to the caller (malloc'ed, NUL-terminated) and resets the buffer. */
char *fl_buf_take(fl_buf_t *b, size_t *len);
void fl_buf_free(fl_buf_t *b);

/* Growable vector of token ids. */
typedef struct fl_toks {
    int *v;
    size_t n;
    size_t cap;
} fl_toks_t;

void fl_toks_push(fl_toks_t *t, int id);
void fl_toks_free(fl_toks_t *t);

void *fl_xmalloc(size_t n);
void *fl_xcalloc(size_t n, size_t size);
void *fl_xrealloc(void *p, size_t n);
char *fl_xstrdup(const char *s);
char *fl_xstrndup(const char *s, size_t n);

/*
 * llama-server's validate_utf8(): the length of the longest prefix that does not end
 * in a cut-off multi-byte character. Only the last 4 bytes are looked at, so a lone
 * continuation byte counts as "complete" (exactly like the real server).
 */
size_t fl_utf8_complete_prefix(const char *s, size_t n);

/* 1 if s is strictly valid UTF-8 (a cut-off character at the very end is allowed
 * when allow_tail is set). */
int fl_utf8_valid(const char *s, size_t n, int allow_tail);

/* Appends s to b, replacing every invalid sequence with U+FFFD (nlohmann's
 * error_handler_t::replace). */
void fl_utf8_sanitize(fl_buf_t *b, const char *s, size_t n);

/* CLOCK_MONOTONIC in microseconds (comparable with other processes' readings). */
long long fl_now_us(void);

/* 64-bit FNV-1a and a xorshift64* step. */
uint64_t fl_fnv1a(uint64_t h, const void *data, size_t n);
uint64_t fl_rng_next(uint64_t *state);

#endif /* FL_UTIL_H */
