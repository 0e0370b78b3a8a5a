/*
 * jspan.h - locate values inside serialized JSON without parsing it into a tree.
 *
 * The relay must pass backend JSON through byte for byte (jansson would reformat
 * floats such as 0.843 as 0.84299999999999997), yet rewrite a few members (`model`,
 * and in the token-ID path `logprobs`, `token_ids`, and the request members it owns). These functions find the byte
 * span of a member's value so that the caller can splice. They validate only the
 * structure they walk (strings, nesting); a caller that needs full validation parses
 * with jansson. Pure functions, any thread.
 */
#ifndef GW_CORE_JSPAN_H
#define GW_CORE_JSPAN_H

#include <stddef.h>

typedef struct gw_jspan {
    size_t mem_off;  /* start of the member ("key"), for deleting it */
    size_t val_off;  /* start of the value */
    size_t val_len;  /* length of the value */
} gw_jspan_t;

/*
 * Skips one JSON value starting at p[i] (leading whitespace allowed). Returns the
 * index just after it, or (size_t)-1 if malformed or truncated. Depth is bounded by
 * GW_JSPAN_MAX_DEPTH levels, the most jansson parses (and the largest
 * limits.max_json_depth), so any value jansson accepted can be skipped.
 */
#define GW_JSPAN_MAX_DEPTH 2048

size_t gw_json_skip(const char *p, size_t len, size_t i);

/*
 * Finds member `key` (compared with its raw, unescaped-form bytes) directly in the
 * object that starts at p[off] (whitespace allowed). Returns 1 and fills *out (offsets
 * relative to p) when found, 0 when the object has no such member, -1 if p[off] is not
 * a well-formed object.
 */
int gw_json_member(const char *p, size_t len, size_t off, const char *key, gw_jspan_t *out);

/*
 * Iterates the members of the object at p[off] (whitespace allowed), repeated keys
 * included, in order. Start with *it = 0. Each call returns 1 and the member's span in
 * *m (mem_off = the key's opening quote), 0 after the last member, -1 if malformed.
 */
int gw_json_object_next(const char *p, size_t len, size_t off, size_t *it, gw_jspan_t *m);

/*
 * 1 if the member m (from gw_json_member or gw_json_object_next) is named key, comparing
 * the key's decoded text as a parser reads it ("\u0073top" is "stop"), 0 otherwise.
 * key is NUL-terminated UTF-8.
 */
int gw_json_key_eq(const char *p, size_t len, const gw_jspan_t *m, const char *key);

/*
 * Decodes the escape at p[*i] (p[*i] == '\\', the string ends at end) into UTF-8 in b.
 * Returns the bytes written (0 if malformed: a lone surrogate, a bad \u escape) and
 * advances *i past the escape (both halves of a surrogate pair).
 */
size_t gw_json_unescape(const char *p, size_t end, size_t *i, unsigned char b[4]);

/*
 * Iterates the elements of the array at p[off]. Start with *it = 0. Each call returns
 * 1 and the element's span in *el (val_off/val_len), 0 at the end, -1 if malformed.
 */
int gw_json_array_next(const char *p, size_t len, size_t off, size_t *it, gw_jspan_t *el);

/* 1 if the span holds a JSON string, and its raw inner bytes (escapes kept). */
int gw_json_span_is_string(const char *p, const gw_jspan_t *v);

/*
 * A cheap guard to run before a real parser: 1 if no '[' or '{' outside strings opens
 * a level deeper than max_depth, 0 otherwise. One pass, no allocation, no recursion.
 * It does not validate anything else; malformed text is left for the parser to reject.
 */
int gw_json_depth_ok(const char *p, size_t len, unsigned max_depth);

#endif
