/*
 * request.h - validation of OpenAI request bodies (chat, completions, embeddings...).
 *
 * The gateway forwards request bodies byte for byte; this module only decides whether
 * a body is acceptable and, if not, says why with the OpenAI `param`. The checks are a
 * declarative table per endpoint: a field's allowed JSON types and whether it is
 * required. Fields not in the table (llama.cpp extensions) pass unchecked.
 *
 * Two entry points share the tables. gw_oai_check is the fast path: it validates the
 * bytes in one pass (core/jcheck.h) and reads the top-level members without building a
 * tree. gw_oai_parse builds the jansson tree; it is the reference, the one that words
 * every error, and the one the token-ID path needs. Where a body has duplicate keys,
 * both use the last occurrence, as jansson and llama-server do.
 * Pure functions, any thread; no global state.
 */
#ifndef GW_OPENAI_REQUEST_H
#define GW_OPENAI_REQUEST_H

#include <jansson.h>

#include "core/err.h"

typedef enum gw_oai_kind {
    GW_OAI_CHAT = 0,
    GW_OAI_COMPLETIONS,
    GW_OAI_EMBEDDINGS,
    GW_OAI_OTHER, /* model-routed, only `model` is checked */
} gw_oai_kind_t;

/*
 * Parses body (len bytes) into *root (owned by the caller on success) and checks it.
 * Returns GW_OK, GW_EBADJSON (syntax, with line/column/position), or GW_EPARAM /
 * GW_EBADREQ with err->param naming the field.
 */
gw_err_t gw_oai_parse(const char *body, size_t len, gw_oai_kind_t kind, json_t **root,
                      gw_errbuf_t *err);

/* What the fast path learns from a valid body. */
typedef struct gw_oai_fast {
    const char *model; /* the last `model` member's bytes (a view into body, no escapes) */
    size_t model_len;
    int stream;        /* the last `stream` member is `true` (json_is_true) */
} gw_oai_fast_t;

/*
 * The fast path: returns 1 when gw_oai_parse would return GW_OK for this body and the
 * tree is not needed, and the body nests at most max_depth containers (the rule of
 * gw_json_depth_ok, so that a caller need not scan the body twice), with *out filled (what gw_oai_parse's tree would say for `model`
 * and `stream`). Returns 0 when the caller must call gw_oai_parse instead, which then
 * gives the tree or today's exact error:
 *  - the body is invalid JSON or fails a check (the errors are worded only there);
 *  - chat and completions: a top-level `stop_token_ids` or `return_token_ids` member
 *    (the token-ID path reads the tree);
 *  - the model name holds a backslash escape;
 *  - the body is beyond the checker (core/jcheck.h: nested deeper than
 *    GW_JCHECK_MAX_DEPTH or max_depth, a real of magnitude 1e308 or more).
 * Never allocates; reads only body[0, len).
 */
int gw_oai_check(const char *body, size_t len, gw_oai_kind_t kind, unsigned max_depth,
                 gw_oai_fast_t *out);

#endif
