/*
 * util.c - buffers, token vectors, UTF-8 checks, clocks and hashing for fake-llama.
 * See util.h for the contracts.
 */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *fl_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        abort();
    return p;
}

void *fl_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (!p)
        abort();
    return p;
}

void *fl_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q)
        abort();
    return q;
}

char *fl_xstrndup(const char *s, size_t n)
{
    char *p = fl_xmalloc(n + 1);

    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *fl_xstrdup(const char *s)
{
    return fl_xstrndup(s, strlen(s));
}

/* ---------------------------------------------------------------- buffer */

static void buf_reserve(fl_buf_t *b, size_t extra)
{
    size_t need = b->n + extra + 1;

    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->p = fl_xrealloc(b->p, cap);
    b->cap = cap;
}

void fl_buf_add(fl_buf_t *b, const void *data, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void fl_buf_adds(fl_buf_t *b, const char *s)
{
    fl_buf_add(b, s, strlen(s));
}

void fl_buf_addc(fl_buf_t *b, char c)
{
    fl_buf_add(b, &c, 1);
}

void fl_buf_addf(fl_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_list ap2;

    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        buf_reserve(b, (size_t)n);
        vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap2);
        b->n += (size_t)n;
    }
    va_end(ap2);
}

void fl_buf_truncate(fl_buf_t *b, size_t n)
{
    if (n < b->n) {
        b->n = n;
        b->p[n] = '\0';
    }
}

char *fl_buf_take(fl_buf_t *b, size_t *len)
{
    char *p = b->p;

    if (!p)
        p = fl_xstrdup("");
    if (len)
        *len = b->n;
    b->p = NULL;
    b->n = b->cap = 0;
    return p;
}

void fl_buf_free(fl_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---------------------------------------------------------------- tokens */

void fl_toks_push(fl_toks_t *t, int id)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->v = fl_xrealloc(t->v, t->cap * sizeof(int));
    }
    t->v[t->n++] = id;
}

void fl_toks_free(fl_toks_t *t)
{
    free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}

/* ---------------------------------------------------------------- UTF-8 */

size_t fl_utf8_complete_prefix(const char *s, size_t n)
{
    for (size_t i = 1; i <= 4 && i <= n; i++) {
        unsigned char c = (unsigned char)s[n - i];

        if ((c & 0xE0) == 0xC0) {
            if (i < 2)
                return n - i;
        } else if ((c & 0xF0) == 0xE0) {
            if (i < 3)
                return n - i;
        } else if ((c & 0xF8) == 0xF0) {
            if (i < 4)
                return n - i;
        }
    }
    return n;
}

/*
 * Length of the valid UTF-8 sequence at s (1..4), 0 if the bytes there are invalid,
 * or -k when the input ends after k bytes of a sequence that was valid so far.
 */
static int utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    int len;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n)
            return -i;
        unsigned char d = s[i];
        unsigned char l = i == 1 ? lo : 0x80;
        unsigned char h = i == 1 ? hi : 0xBF;
        if (d < l || d > h)
            return 0;
    }
    return len;
}

/* How many bytes one U+FFFD replaces at an invalid position: the lead byte plus the
 * continuation bytes that were still acceptable (the maximal valid prefix). */
static size_t utf8_bad_len(const unsigned char *s, size_t n)
{
    size_t j = 1;

    while (j < n && j < 4 && utf8_seq(s, j + 1) < 0)
        j++;
    return j;
}

int fl_utf8_valid(const char *s, size_t n, int allow_tail)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        int k = utf8_seq(p + i, n - i);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        if (k < 0 && allow_tail)
            return 1;
        return 0;
    }
    return 1;
}

void fl_utf8_sanitize(fl_buf_t *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    size_t run = 0;

    while (i < n) {
        int k = utf8_seq(p + i, n - i);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        fl_buf_add(b, s + run, i - run);
        fl_buf_add(b, "\xEF\xBF\xBD", 3);
        if (k < 0)
            i = n;
        else
            i += utf8_bad_len(p + i, n - i);
        run = i;
    }
    fl_buf_add(b, s + run, n - run);
}

/* ---------------------------------------------------------------- misc */

long long fl_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

uint64_t fl_fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;

    if (h == 0)
        h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

uint64_t fl_rng_next(uint64_t *state)
{
    uint64_t x = *state;

    if (x == 0)
        x = 0x9E3779B97F4A7C15ULL;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 2685821657736338717ULL;
}
