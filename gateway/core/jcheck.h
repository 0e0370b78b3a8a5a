/*
 * jcheck.h - strict JSON validation in one pass, without building a tree.
 *
 * The gateway forwards request bodies byte for byte, so building a jansson tree only to
 * learn "is this valid, which model, stream or not" is wasted work (7 % of the CPU on a
 * small chat request, and a tree as big as the prompt on a large one). These functions
 * answer the same question from the bytes: no allocation, no recursion (an explicit bit
 * stack bounded by GW_JCHECK_MAX_DEPTH), one pass.
 *
 * Contract: the checker never accepts a text that jansson's json_loadb(p, len,
 * JSON_DECODE_ANY, ...) rejects. It checks the RFC 8259 grammar, strict UTF-8 (no
 * overlong forms, no surrogates, nothing above U+10FFFF), escapes, "\u0000" (jansson
 * refuses it without JSON_ALLOW_NUL), unpaired or misordered surrogate escapes, integers
 * outside int64 ("too big integer") and reals that would overflow a double. It may be
 * stricter than jansson: nesting is capped at GW_JCHECK_MAX_DEPTH (jansson allows 2048),
 * and a real whose magnitude reaches 1e308 is refused even when it is still finite
 * (< DBL_MAX). It also refuses every NUL byte outside a string, where jansson skips one
 * that directly follows a number or a literal ("[1\0]": its stream reader takes a pushed
 * back NUL for an empty buffer). A caller that must accept everything jansson accepts
 * falls back to jansson when the checker says no.
 *
 * Pure functions on (pointer, length) views: the text need not be NUL-terminated and no
 * byte at or after len is read. Any thread.
 */
#ifndef GW_CORE_JCHECK_H
#define GW_CORE_JCHECK_H

#include <stddef.h>

/* Nesting limit of the checker, in containers (objects and arrays). */
#define GW_JCHECK_MAX_DEPTH 1024u

/* The JSON type of a validated value, with jansson's split of numbers. */
typedef enum gw_jtype {
    GW_JT_STRING = 0,
    GW_JT_INTEGER, /* no '.', 'e' or 'E': json_is_integer in jansson */
    GW_JT_REAL,    /* json_is_real */
    GW_JT_TRUE,
    GW_JT_FALSE,
    GW_JT_NULL,
    GW_JT_ARRAY,
    GW_JT_OBJECT,
} gw_jtype_t;

/*
 * Validates the one value that starts at p[i] (leading whitespace skipped), nesting at
 * most max_depth containers (capped at GW_JCHECK_MAX_DEPTH; 0 allows scalars only).
 * Returns the index just after the value and sets *type, or (size_t)-1 when the value is
 * invalid, truncated or too deep. What follows the value is not looked at.
 */
size_t gw_jcheck_value(const char *p, size_t len, size_t i, unsigned max_depth,
                       gw_jtype_t *type);

/* 1 if p[i, len) is only JSON whitespace (space, tab, LF, CR), 0 otherwise. */
int gw_jcheck_rest_ws(const char *p, size_t len, size_t i);

/*
 * 1 if p[0, len) is exactly one JSON text (a value with optional whitespace around it)
 * that jansson accepts; *type (may be NULL) gets the top-level type. 0 otherwise.
 */
int gw_jcheck_text(const char *p, size_t len, unsigned max_depth, gw_jtype_t *type);

/*
 * Member iterator over one object, validating as it goes:
 *
 *     gw_jcheck_obj_t it;
 *     gw_jmember_t m;
 *     gw_jcheck_obj_init(&it, 0, GW_JCHECK_MAX_DEPTH);
 *     while ((rc = gw_jcheck_obj_next(p, len, &it, &m)) == 1)
 *         ...;                    (rc 0: it.pos is just after '}'; rc -1: invalid)
 *
 * Members come in text order, duplicates included (jansson keeps the last one).
 */
typedef struct gw_jcheck_obj {
    size_t pos;     /* next byte to read */
    unsigned depth; /* containers allowed, the object itself included */
    int state;      /* private */
} gw_jcheck_obj_t;

typedef struct gw_jmember {
    size_t key_off;  /* first byte inside the key's quotes */
    size_t key_len;  /* raw length, escapes as written */
    int key_escaped; /* the key holds a backslash escape (see gw_jcheck_unescape) */
    size_t val_off;  /* the value's first byte */
    size_t val_len;  /* the value's length */
    gw_jtype_t type; /* the value's type */
} gw_jmember_t;

/* Starts an iteration over the object at p[off] (leading whitespace allowed). */
void gw_jcheck_obj_init(gw_jcheck_obj_t *it, size_t off, unsigned max_depth);

/* Returns 1 with *m filled, 0 after the closing '}', -1 (and -1 again) when invalid. */
int gw_jcheck_obj_next(const char *p, size_t len, gw_jcheck_obj_t *it, gw_jmember_t *m);

/*
 * Decodes the raw inner bytes s[0, n) of a string that the checker accepted into out
 * (escapes resolved, surrogate pairs joined into UTF-8). Returns the decoded length, or
 * (size_t)-1 when it would exceed cap bytes. out is not NUL-terminated.
 */
size_t gw_jcheck_unescape(const char *s, size_t n, char *out, size_t cap);

#endif
