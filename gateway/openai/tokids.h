/*
 * tokids.h - stop_token_ids in, token_ids out (vLLM's field names) on top of llama-server.
 *
 * Request side: detects and validates `stop_token_ids` / `return_token_ids`, and builds
 * the body sent upstream by splicing the client's bytes: the gateway-only fields removed,
 * the stop tokens' pieces added to `stop`, and the backend asked for what ID recovery
 * needs (logprobs with the smallest useful count, per-token timings for positions, usage,
 * `return_tokens` + `verbose`); every other member passes through byte for byte.
 *
 * Response side: a per-request processor turns the backend's stream events (or its
 * non-stream body) into what the client asked for: `token_ids` per choice (per chunk in
 * streams), `prompt_token_ids`, `stop_reason`, `token_ids_complete` (+ `token_ids_missing`
 * when an ID could not be recovered exactly), the stop enforced at a listed token ID, and
 * everything the client did not ask for (logprobs, timings, usage chunk, __verbose)
 * removed again. Every byte the gateway does not own passes through unchanged.
 *
 * Pure and single-threaded (the relay calls it from the upstream thread).
 */
#ifndef GW_OPENAI_TOKIDS_H
#define GW_OPENAI_TOKIDS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/vocab.h"

typedef struct gw_tok_req {
    int chat;                /* chat vs completions */
    int stream;              /* the client asked for a stream */
    int want_ids;            /* return_token_ids: true */
    int64_t *stop_ids;       /* stop_token_ids, deduplicated, in the client's order */
    size_t n_stop_ids;
    int client_logprobs;     /* the client asked for logprobs itself */
    int client_top_zero;     /* chat: logprobs with top_logprobs 0 (sampled token only) */
    int include_usage;       /* the client asked stream_options.include_usage */
    int timings_per_token;   /* the client asked timings_per_token */
    int verbose;             /* the client asked verbose */
    int tools_stream;        /* chat stream with tools: llama-server rejects logprobs */
    int n_choices;
    json_t *stops;           /* the stop strings sent upstream (set by gw_tok_req_body) */
    int64_t *special_ids;    /* listed stop IDs that llama-server renders as "" (control
                              * tokens); the caller classifies them (see server.c) */
    size_t n_special_ids;
} gw_tok_req_t;

/*
 * Looks at a validated request body. Returns 0 when the token-ID path is not needed,
 * 1 when it is (tr filled; free with gw_tok_req_free), or -1 with err filled (400,
 * param "stop_token_ids" or "return_token_ids").
 */
int gw_tok_req_detect(json_t *root, int chat, size_t max_stop_ids, gw_tok_req_t *tr,
                      gw_errbuf_t *err);
void gw_tok_req_free(gw_tok_req_t *tr);

/*
 * Range-checks the stop IDs against the vocabulary and appends the upstream body to out.
 * body/len are the client's request bytes and root their parse (read only). The body
 * is spliced, not re-serialized: every member keeps its exact bytes and order except
 * the members the gateway owns on this path (return_token_ids, stop_token_ids, stop,
 * logprobs, top_logprobs, verbose, timings_per_token, stream_options, return_tokens),
 * which go out at most once each: removed, replaced in place at their first occurrence
 * or appended (see the README, Token IDs). Sets tr->stops. Returns GW_OK; GW_EPARAM for
 * a stop ID outside the vocabulary (out untouched); GW_ETOOBIG when out's ceiling is
 * hit; GW_EINTERNAL if body does not scan as the object root was parsed from. On error
 * out's content is unspecified (the caller discards it).
 */
gw_err_t gw_tok_req_body(const json_t *root, const char *body, size_t len, gw_tok_req_t *tr,
                         const gw_vocab_t *v, gw_buf_t *out, gw_errbuf_t *err);

typedef struct gw_tok_resp gw_tok_resp_t;

/* prompt_ids may be NULL (unknown). Keeps a reference on v. Copies everything it keeps. */
gw_tok_resp_t *gw_tok_resp_new(const gw_tok_req_t *tr, gw_vocab_t *v, const int64_t *prompt_ids,
                               size_t n_prompt, const char *model, size_t model_len);
void gw_tok_resp_free(gw_tok_resp_t *r);

enum { GW_TOK_CONTINUE = 0, GW_TOK_STOP = 1 };

/*
 * Stream: processes one backend SSE event's data and appends the resulting SSE bytes
 * (zero or more events) to out. GW_TOK_STOP means every choice has ended at a listed
 * stop token: the output is complete (finish chunk, [DONE]) and the backend transfer
 * should be cancelled.
 */
int gw_tok_resp_event(gw_tok_resp_t *r, const char *data, size_t len, gw_buf_t *out);

/* Non-stream: rewrites the backend's whole body into out. */
void gw_tok_resp_body(gw_tok_resp_t *r, const char *body, size_t len, gw_buf_t *out);

#endif
