/*
 * tokpath.c - the token-ID prelude of a relay (openai/tokids.h does the rewriting).
 *
 * Before a request with `return_token_ids` or `stop_token_ids` goes to its backend, on
 * the proxy's upstream thread: get the model's vocabulary (upstream/tokcache.h), range-
 * check the stop IDs, find which of them are control tokens (llama-server renders those
 * as ""), write the upstream body (the client's bytes, spliced), fetch the prompt's
 * token IDs (/apply-template, /tokenize), then add the transfer. Every step is an asynchronous
 * fetch whose callback runs the next; a proxy released meanwhile cancels its fetch.
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "http/internal.h"

/* --- token-ID prelude (upstream thread) ------------------------------------- */

static void tok_begin_main(gw_proxy_t *px)
{
    int gone;

    pthread_mutex_lock(&px->mu);
    gone = px->client_gone || px->shutdown;
    pthread_mutex_unlock(&px->mu);
    if (gone)
        return; /* the cancel that follows releases everything */
    px->tok = gw_tok_resp_new(&px->tok_req, px->tok_vocab, px->tok_have_prompt ? px->tok_prompt
                                                                                : NULL,
                              px->tok_n_prompt, px->model_name, px->model_len);
    gw_upstream_add(px->up, &px->x);
}

static int parse_token_list(const char *body, size_t len, int64_t **out, size_t *n)
{
    json_t *root = json_loadb(body, len, 0, NULL), *toks = json_object_get(root, "tokens"), *t;
    size_t i;

    if (!json_is_array(toks)) {
        json_decref(root);
        return -1;
    }
    *n = json_array_size(toks);
    *out = gw_xcalloc(*n + 1, sizeof(int64_t));
    json_array_foreach(toks, i, t)
    {
        if (json_is_object(t))
            t = json_object_get(t, "id");
        (*out)[i] = json_integer_value(t);
    }
    json_decref(root);
    return 0;
}

static void on_prompt_tokens(gw_fetch_t *f, void *data)
{
    gw_proxy_t *px = data;

    px->tok_fetch = NULL;
    if (f->rc == CURLE_OK && f->status == 200 &&
        parse_token_list(f->body.ptr, f->body.len, &px->tok_prompt, &px->tok_n_prompt) == 0)
        px->tok_have_prompt = 1;
    else
        GW_LOG(GW_LOG_WARN, "prompt_token_ids unavailable for model %s (HTTP %ld)",
               px->model->conf->name, f->status);
    gw_fetch_free(f);
    tok_begin_main(px);
}

static void tokenize_prompt(gw_proxy_t *px, json_t *content)
{
    json_t *req = json_pack("{s:O, s:b, s:b}", "content", content, "add_special", 1,
                            "parse_special", 1);
    char *s = json_dumps(req, JSON_COMPACT);

    px->tok_fetch = gw_fetch_start(px->up, px->model->upstream, "/tokenize", s,
                                   strlen(s), px->model->conf->api_key,
                                   (long)px->srv->conf->first_byte_timeout_ms,
                                   px->srv->conf->max_response_bytes, on_prompt_tokens, px);
    free(s);
    json_decref(req);
}

static void on_template(gw_fetch_t *f, void *data)
{
    gw_proxy_t *px = data;
    json_t *root = NULL, *prompt;

    px->tok_fetch = NULL;
    if (f->rc == CURLE_OK && f->status == 200)
        root = json_loadb(f->body.ptr, f->body.len, 0, NULL);
    prompt = json_object_get(root, "prompt");
    gw_fetch_free(f);
    if (json_is_string(prompt)) {
        tokenize_prompt(px, prompt);
    } else {
        GW_LOG(GW_LOG_WARN, "prompt_token_ids unavailable for model %s: /apply-template failed",
               px->model->conf->name);
        tok_begin_main(px);
    }
    json_decref(root);
}

static void tok_after_classify(gw_proxy_t *px)
{
    gw_err_t rc;
    gw_errbuf_t e;
    gw_buf_t body;
    json_t *prompt;
    size_t i, up_len;

    /* the listed stop tokens that llama-server renders as "" */
    px->tok_req.special_ids = gw_xcalloc(px->tok_req.n_stop_ids + 1, sizeof(int64_t));
    for (i = 0; i < px->tok_req.n_stop_ids; i++)
        if (gw_tokcache_special(px->srv->tokcache, px->model, px->tok_req.stop_ids[i]) == 1)
            px->tok_req.special_ids[px->tok_req.n_special_ids++] = px->tok_req.stop_ids[i];

    gw_buf_init(&body, px->srv->conf->max_body_bytes * 2 + 65536);
    rc = gw_tok_req_body(px->tok_root, px->body, px->body_len, &px->tok_req, px->tok_vocab,
                         &body, &e);
    if (rc != GW_OK) {
        gw_buf_free(&body);
        gw__proxy_fail_early(px, rc, e.param, e.msg); /* 400 for a stop ID, 413, 500 */
        return;
    }
    /* px->body (the client's bytes) stays for /apply-template */
    px->tok_body = gw_buf_take(&body, &up_len);
    curl_easy_setopt(px->x.easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)up_len);
    curl_easy_setopt(px->x.easy, CURLOPT_POSTFIELDS, px->tok_body);

    if (!px->tok_req.want_ids) {
        tok_begin_main(px);
        return;
    }
    if (px->tok_req.chat) {
        /* the tokens the backend evaluates: its template applied, then tokenized as it
         * tokenizes chat prompts (special tokens parsed, BOS as the model adds it) */
        px->tok_fetch = gw_fetch_start(px->up, px->model->upstream, "/apply-template",
                                       px->body, px->body_len, px->model->conf->api_key,
                                       (long)px->srv->conf->first_byte_timeout_ms,
                                       px->srv->conf->max_response_bytes, on_template, px);
        return;
    }
    prompt = json_object_get(px->tok_root, "prompt");
    if (json_is_string(prompt)) {
        tokenize_prompt(px, prompt);
        return;
    }
    if (json_is_array(prompt) && json_array_size(prompt) > 0 &&
        json_is_integer(json_array_get(prompt, 0))) {
        json_t *t;

        px->tok_n_prompt = json_array_size(prompt);
        px->tok_prompt = gw_xcalloc(px->tok_n_prompt + 1, sizeof(int64_t));
        json_array_foreach(prompt, i, t) px->tok_prompt[i] = json_integer_value(t);
        px->tok_have_prompt = 1;
    }
    tok_begin_main(px);
}

static void tok_classify_next(gw_proxy_t *px);

/* A stop token is a control token when its text does not tokenize back to it without
 * special-token parsing (llama-server then renders it as "" in generated text). */
static void on_classified(gw_fetch_t *f, void *data)
{
    gw_proxy_t *px = data;
    int64_t id = px->tok_req.stop_ids[px->tok_cls_i], *toks = NULL;
    size_t n = 0;
    int special = 0;

    px->tok_fetch = NULL;
    if (f->rc == CURLE_OK && f->status == 200 &&
        parse_token_list(f->body.ptr, f->body.len, &toks, &n) == 0)
        special = !(n == 1 && toks[0] == id);
    free(toks);
    gw_fetch_free(f);
    gw_tokcache_set_special(px->srv->tokcache, px->model, id, special);
    px->tok_cls_i++;
    tok_classify_next(px);
}

static void tok_classify_next(gw_proxy_t *px)
{
    while (px->tok_cls_i < px->tok_req.n_stop_ids) {
        int64_t id = px->tok_req.stop_ids[px->tok_cls_i];
        size_t len;
        const char *p;
        json_t *str, *req;
        char *s;

        if (gw_tokcache_special(px->srv->tokcache, px->model, id) >= 0 ||
            (p = gw_vocab_piece(px->tok_vocab, id, &len)) == NULL) {
            px->tok_cls_i++;
            continue;
        }
        str = json_stringn(p, len);
        if (str == NULL || len == 0) { /* raw bytes: a byte token, not a control token */
            json_decref(str);
            gw_tokcache_set_special(px->srv->tokcache, px->model, id, 0);
            px->tok_cls_i++;
            continue;
        }
        req = json_pack("{s:o, s:b, s:b}", "content", str, "add_special", 0, "parse_special", 0);
        s = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        px->tok_fetch = gw_fetch_start(px->up, px->model->upstream, "/tokenize", s,
                                       strlen(s), px->model->conf->api_key,
                                       (long)px->srv->conf->first_byte_timeout_ms, 1u << 20,
                                       on_classified, px);
        free(s);
        return;
    }
    tok_after_classify(px);
}

void gw__tok_on_vocab(gw_tokcache_waiter_t *w, gw_vocab_t *v, const char *err, long status)
{
    gw_proxy_t *px = GW_CONTAINER_OF(w, gw_proxy_t, tok_waiter);
    size_t i;

    if (v == NULL) {
        /* a backend that is still loading is "not ready" (503), as without token IDs */
        if (status == 503) {
            atomic_store(&px->model->state, GW_MODEL_LOADING);
            gw__proxy_fail_early(px, GW_EBUSY, NULL, "Loading model");
        } else {
            gw__proxy_fail_early(px, GW_EUPSTREAM, NULL, err ? err : "tokenizer unavailable");
        }
        return;
    }
    gw_vocab_ref(v);
    px->tok_vocab = v;
    /* range-check first: an invalid ID must not reach the tokenizer */
    for (i = 0; i < px->tok_req.n_stop_ids; i++) {
        if ((uint64_t)px->tok_req.stop_ids[i] >= gw_vocab_size(v)) {
            char msg[200];

            snprintf(msg, sizeof(msg),
                     "'stop_token_ids' contains %lld, outside the model's vocabulary [0, %zu)",
                     (long long)px->tok_req.stop_ids[i], gw_vocab_size(v));
            gw__proxy_fail_early(px, GW_EPARAM, "stop_token_ids", msg);
            return;
        }
    }
    px->tok_cls_i = 0;
    tok_classify_next(px);
}

void gw__tok_prelude(void *arg)
{
    gw_proxy_t *px = arg;

    gw_tokcache_get(px->srv->tokcache, px->model, &px->tok_waiter);
}

