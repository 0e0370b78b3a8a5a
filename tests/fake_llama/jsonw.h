/*
 * jsonw.h - serialises jansson values the way llama-server's nlohmann::ordered_json
 * dump_safe() does: keys in insertion order, no spaces, raw UTF-8 (invalid bytes
 * become U+FFFD), "/" unescaped, lower-case \u00xx for other control characters, and
 * doubles in their shortest round-trip form with ".0" on integral values.
 *
 * jansson's own dumper prints 17 significant digits (0.843 -> 0.84299999999999997),
 * which no llama-server output ever shows; hence this file.
 */
#ifndef FL_JSONW_H
#define FL_JSONW_H

#include <jansson.h>

#include "util.h"

/* Appends the serialisation of v to out. */
void fl_json_write(fl_buf_t *out, const json_t *v);

/* Returns a malloc'ed NUL-terminated serialisation; *len gets its length if non-NULL. */
char *fl_json_dumps(const json_t *v, size_t *len);

/* A string value that may hold arbitrary bytes (serialised with U+FFFD replacement). */
json_t *fl_json_bytes(const char *s, size_t n);

/* A float32 value widened to double, as llama-server prints logprobs. */
json_t *fl_json_f32(float f);

#endif /* FL_JSONW_H */
