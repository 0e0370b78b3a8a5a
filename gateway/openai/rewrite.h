/*
 * rewrite.h - byte-preserving rewrites of backend JSON (bodies and SSE event data).
 *
 * Only the members the gateway owns change; everything else is copied as it came.
 * Pure functions, any thread.
 */
#ifndef GW_OPENAI_REWRITE_H
#define GW_OPENAI_REWRITE_H

#include <stddef.h>

#include "core/buf.h"

/*
 * Appends json to out with its top-level "model" string replaced by `model` (a JSON
 * string is written for it). Returns 1 if replaced, 0 if copied unchanged (not an
 * object, no string "model" member), -1 if out's ceiling was hit.
 */
int gw_oai_set_model(const char *json, size_t len, const char *model, size_t model_len,
                     gw_buf_t *out);

/*
 * gw_oai_set_model for an SSE event, in the same single walk over its members: model ==
 * NULL copies json unchanged, and *has_error (if not NULL) says whether the object has a
 * top-level "error" member.
 */
int gw_oai_rewrite(const char *json, size_t len, const char *model, size_t model_len,
                   gw_buf_t *out, int *has_error);

#endif
