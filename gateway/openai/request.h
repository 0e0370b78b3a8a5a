/*
 * request.h - validation of OpenAI request bodies (chat, completions, embeddings...).
 *
 * The gateway forwards request bodies byte for byte; this module only decides whether
 * a body is acceptable and, if not, says why with the OpenAI `param`. The checks are a
 * declarative table per endpoint: a field's allowed JSON types and whether it is
 * required. Fields not in the table (llama.cpp extensions) pass unchecked.
 * Single-threaded per call; no global state.
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

#endif
