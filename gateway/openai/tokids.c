/*
 * tokids.c - token IDs through llama-server: request rewrite and response recovery.
 *
 * Where the IDs come from (see README "Token IDs" for the full rule set):
 *  - every logprobs item carries the sampled token's `id`; the gateway asks for the
 *    smallest useful count (1; 0 turns logprobs off in llama-server);
 *  - streams: `timings_per_token` gives each chunk the number of tokens decoded so far
 *    (`timings.predicted_n`), so a token that got no item is seen as a gap at an exact
 *    position. A gap whose text was released inside the next item (held-back stop text,
 *    the first bytes of a multi-byte character) is recovered from the vocabulary when the
 *    text splits into exactly that many pieces in exactly one way. A gap with no text
 *    (an end-of-generation or control token, which llama-server renders as "") cannot be
 *    recovered and is reported in `token_ids_missing`;
 *  - non-stream: `return_tokens` + `verbose` give `__verbose.tokens`, the complete list.
 *
 * Reading uses jansson; writing splices the original bytes (core/jedit.h) in both
 * directions: the client's request and the backend's responses keep their floats, escapes,
 * whitespace and key order everywhere except in the members the gateway owns.
 */
#include "openai/tokids.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/jedit.h"
#include "core/jspan.h"

#define GW_TOK_MAX_CHOICES 16

/* ================================================================ request ==== */

int gw_tok_req_detect(json_t *root, int chat, size_t max_stop_ids, gw_tok_req_t *tr,
                      gw_errbuf_t *err)
{
    json_t *rti = json_object_get(root, "return_token_ids");
    json_t *sti = json_object_get(root, "stop_token_ids");
    json_t *v;
    size_t i, j;

    memset(tr, 0, sizeof(*tr));
    if (rti && !json_is_boolean(rti) && !json_is_null(rti)) {
        gw_errf(err, GW_EPARAM, "return_token_ids", "'return_token_ids' must be a boolean");
        return -1;
    }
    if (sti && !json_is_array(sti) && !json_is_null(sti)) {
        gw_errf(err, GW_EPARAM, "stop_token_ids",
                "'stop_token_ids' must be an array of token IDs (integers)");
        return -1;
    }
    if (json_is_array(sti)) {
        if (json_array_size(sti) > max_stop_ids) {
            gw_errf(err, GW_EPARAM, "stop_token_ids",
                    "'stop_token_ids' has %zu entries; at most %zu are allowed",
                    json_array_size(sti), max_stop_ids);
            return -1;
        }
        json_array_foreach(sti, i, v)
        {
            if (!json_is_integer(v) || json_integer_value(v) < 0) {
                gw_errf(err, GW_EPARAM, "stop_token_ids",
                        "'stop_token_ids[%zu]' must be a non-negative integer token ID", i);
                return -1;
            }
        }
    }
    if (!json_is_true(rti) && !(json_is_array(sti) && json_array_size(sti) > 0))
        return 0;

    tr->chat = chat;
    tr->stream = json_is_true(json_object_get(root, "stream"));
    tr->want_ids = json_is_true(rti);
    if (json_is_array(sti)) {
        tr->stop_ids = gw_xcalloc(json_array_size(sti) + 1, sizeof(int64_t));
        json_array_foreach(sti, i, v)
        {
            int64_t id = json_integer_value(v);

            for (j = 0; j < tr->n_stop_ids && tr->stop_ids[j] != id; j++)
                ;
            if (j == tr->n_stop_ids)
                tr->stop_ids[tr->n_stop_ids++] = id;
        }
    }
    if (chat) {
        tr->client_logprobs = json_is_true(json_object_get(root, "logprobs"));
        v = json_object_get(root, "top_logprobs");
        tr->client_top_zero = tr->client_logprobs && json_is_integer(v) &&
                              json_integer_value(v) == 0;
        tr->tools_stream = tr->stream && json_is_array(json_object_get(root, "tools")) &&
                           json_array_size(json_object_get(root, "tools")) > 0;
    } else {
        v = json_object_get(root, "logprobs");
        tr->client_logprobs = json_is_true(v) || (json_is_integer(v) && json_integer_value(v) > 0);
    }
    v = json_object_get(root, "stream_options");
    tr->include_usage = json_is_true(json_object_get(v, "include_usage"));
    tr->timings_per_token = json_is_true(json_object_get(root, "timings_per_token"));
    tr->verbose = json_is_true(json_object_get(root, "verbose"));
    v = json_object_get(root, "n");
    tr->n_choices = json_is_integer(v) && json_integer_value(v) > 1 ? (int)json_integer_value(v) : 1;
    return 1;
}

void gw_tok_req_free(gw_tok_req_t *tr)
{
    free(tr->stop_ids);
    free(tr->special_ids);
    json_decref(tr->stops);
    tr->stop_ids = NULL;
    tr->special_ids = NULL;
    tr->stops = NULL;
}

/* The stop strings sent upstream: the client's own first, then each stop token's piece;
 * no duplicates, no empty strings (an empty stop makes llama-server stop after one
 * token). New reference. */
static json_t *merged_stops(const json_t *root, const gw_tok_req_t *tr, const gw_vocab_t *v)
{
    json_t *old = json_object_get(root, "stop"), *stop = json_array(), *x, *y;
    size_t i, j;

    if (json_is_string(old)) {
        if (json_string_length(old) > 0)
            json_array_append(stop, old);
    } else if (json_is_array(old)) {
        json_array_foreach(old, i, x)
        {
            if (!json_is_string(x) || json_string_length(x) == 0)
                continue;
            json_array_foreach(stop, j, y)
            {
                if (json_equal(x, y))
                    break;
            }
            if (j == json_array_size(stop))
                json_array_append(stop, x);
        }
    }
    for (i = 0; i < tr->n_stop_ids; i++) {
        size_t len;
        const char *p = gw_vocab_piece(v, tr->stop_ids[i], &len);

        if (p == NULL || len == 0)
            continue;
        json_array_foreach(stop, j, y)
        {
            if (json_string_length(y) == len && memcmp(json_string_value(y), p, len) == 0)
                break;
        }
        if (j == json_array_size(stop)) {
            json_t *str = json_stringn(p, len);

            if (str) /* a piece that is not valid UTF-8 cannot be a stop string */
                json_array_append_new(stop, str);
        }
    }
    return stop;
}

/* The request members the gateway owns on this path, in the order appended ones go
 * out (the order the tree rewrite used to give them). Each reaches the backend at most
 * once. */
enum {
    OWN_RETURN_TOKEN_IDS,
    OWN_STOP_TOKEN_IDS,
    OWN_STOP,
    OWN_LOGPROBS,
    OWN_TOP_LOGPROBS,
    OWN_VERBOSE,
    OWN_TIMINGS,
    OWN_STREAM_OPTIONS,
    OWN_RETURN_TOKENS,
    OWN__COUNT
};

static const char *const own_keys[OWN__COUNT] = {
    "return_token_ids", "stop_token_ids", "stop", "logprobs", "top_logprobs", "verbose",
    "timings_per_token", "stream_options", "return_tokens",
};

/* Sets own[k] to a literal value. */
static void own_set(gw_jmember_set_t *own, int k, const char *raw)
{
    own[k].raw = raw;
    own[k].raw_len = strlen(raw);
}

/* The last occurrence of each owned member (the one the parsed tree holds), in one walk
 * over the body: last[k] is valid when present[k]. -1 if the body does not scan. */
static int find_owned(const char *body, size_t len, gw_jspan_t *last, int *present)
{
    size_t it = 0;
    gw_jspan_t m;
    int rc, k;

    memset(present, 0, OWN__COUNT * sizeof(*present));
    while ((rc = gw_json_object_next(body, len, 0, &it, &m)) == 1) {
        for (k = 0; k < OWN__COUNT; k++) {
            if (gw_json_key_eq(body, len, &m, own_keys[k])) {
                last[k] = m;
                present[k] = 1;
                break;
            }
        }
    }
    return rc;
}

/* Chat streams: the client's stream_options m (its last occurrence; NULL if absent) with
 * include_usage set to true and its other bytes kept, into so; {"include_usage":true}
 * when it is absent or not an object. -1 when it cannot be edited. */
static int stream_options_raw(const char *body, const gw_jspan_t *m, gw_buf_t *so)
{
    static const gw_jmember_set_t usage = {"include_usage", "true", 4};
    gw_jedit_t e;
    int rc;

    if (m == NULL || body[m->val_off] != '{')
        return gw_buf_adds(so, "{\"include_usage\":true}") == GW_OK ? 0 : -1;
    gw_jedit_init(&e);
    rc = gw_jedit_object(&e, body + m->val_off, m->val_len, 0, &usage, 1);
    if (rc == 0)
        rc = gw_jedit_apply(&e, body + m->val_off, m->val_len, so);
    gw_jedit_free(&e);
    return rc;
}

gw_err_t gw_tok_req_body(const json_t *root, const char *body, size_t len, gw_tok_req_t *tr,
                         const gw_vocab_t *v, gw_buf_t *out, gw_errbuf_t *err)
{
    gw_jmember_set_t own[OWN__COUNT];
    gw_jspan_t last[OWN__COUNT];
    int present[OWN__COUNT], k;
    gw_jedit_t e;
    gw_buf_t so;
    char *stop_raw = NULL;
    size_t i, n_vocab = gw_vocab_size(v);
    gw_err_t rc = GW_OK;

    gw_jedit_init(&e);
    gw_buf_init(&so, len + 32);
    for (i = 0; i < tr->n_stop_ids; i++) {
        if ((uint64_t)tr->stop_ids[i] >= n_vocab) {
            rc = gw_errf(err, GW_EPARAM, "stop_token_ids",
                         "'stop_token_ids' contains %lld, outside the model's vocabulary "
                         "[0, %zu)", (long long)tr->stop_ids[i], n_vocab);
            goto out;
        }
    }
    /* the body gw_oai_parse accepted always scans: jspan's depth bound is jansson's, and
     * gw_oai_parse refuses the NUL bytes jansson lets through after a number or literal */
    if (find_owned(body, len, last, present) != 0)
        goto unscannable;

    /* Every owned member is decided here; all others keep their bytes. An owned member
     * left with raw == NULL is removed (every occurrence); one the gateway leaves as the
     * client sent it gets the value of its last occurrence, so that it too goes out
     * once. return_token_ids and stop_token_ids are the gateway's own: never forwarded. */
    for (k = 0; k < OWN__COUNT; k++) {
        own[k].key = own_keys[k];
        own[k].raw = present[k] ? body + last[k].val_off : NULL;
        own[k].raw_len = present[k] ? last[k].val_len : 0;
    }
    own[OWN_RETURN_TOKEN_IDS].raw = NULL;
    own[OWN_STOP_TOKEN_IDS].raw = NULL;

    if (tr->n_stop_ids > 0 || json_object_get(root, "stop")) {
        json_t *stop = merged_stops(root, tr, v);

        json_decref(tr->stops);
        tr->stops = stop;
        own[OWN_STOP].raw = NULL;
        if (json_array_size(stop) > 0) {
            stop_raw = json_dumps(stop, JSON_COMPACT);
            own_set(own, OWN_STOP, stop_raw);
        }
    }

    /* logprobs with the smallest useful count: 0 turns them off in llama-server */
    if (tr->chat && !tr->tools_stream) {
        own_set(own, OWN_LOGPROBS, "true");
        if (!tr->client_logprobs || tr->client_top_zero)
            own_set(own, OWN_TOP_LOGPROBS, "1");
    } else if (!tr->chat && !tr->client_logprobs) {
        own_set(own, OWN_LOGPROBS, "1");
    }
    own_set(own, OWN_VERBOSE, "true");
    if (tr->stream) {
        own_set(own, OWN_TIMINGS, "true");
        if (tr->chat) {
            if (stream_options_raw(body, present[OWN_STREAM_OPTIONS] ? &last[OWN_STREAM_OPTIONS]
                                                                     : NULL,
                                   &so) != 0)
                goto unscannable;
            own[OWN_STREAM_OPTIONS].raw = so.ptr;
            own[OWN_STREAM_OPTIONS].raw_len = so.len;
        }
    } else {
        own_set(own, OWN_RETURN_TOKENS, "true");
    }

    if (gw_jedit_object(&e, body, len, 0, own, OWN__COUNT) != 0)
        goto unscannable;
    if (gw_jedit_apply(&e, body, len, out) != 0)
        rc = gw_errf(err, GW_ETOOBIG, NULL, "request body too large after rewriting");
    goto out;
unscannable:
    rc = gw_errf(err, GW_EINTERNAL, NULL, "request body could not be rewritten");
out:
    free(stop_raw);
    gw_buf_free(&so);
    gw_jedit_free(&e);
    return rc;
}

/* ================================================================ response === */

typedef struct idvec {
    int64_t *v;
    size_t n, cap;
} idvec_t;

static void idvec_push(idvec_t *a, int64_t id)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 32;
        a->v = gw_xrealloc(a->v, a->cap * sizeof(int64_t));
    }
    a->v[a->n++] = id;
}

typedef struct choice_state {
    size_t accounted;     /* generated tokens accounted for (known or declared missing) */
    size_t n_items;
    int finished;         /* a finish chunk was relayed for it */
    int ended_by_id;      /* the gateway ended it at a listed stop token */
    int inferred;         /* ... a control token that llama-server did not report */
    int64_t stop_id;
    json_t *missing;      /* [{"position","count","reason"}] */
    int sent_first;
    char pending[4096];   /* text of chunks that came without an item since the last one
                           * (speculative decoding sends tokens without probabilities) */
    size_t n_pending;
    int pending_bad;      /* a parser reshaped the text (tool calls, reasoning): the
                           * deltas are not the tokens' text, so never split them */
} choice_state_t;

struct gw_tok_resp {
    gw_tok_req_t tr;      /* copy; stop_ids owned */
    gw_vocab_t *vocab;
    int64_t *prompt;
    size_t n_prompt;
    int have_prompt;
    char *model;
    size_t model_len;
    choice_state_t ch[GW_TOK_MAX_CHOICES];
    int sent_first_chunk;
    int done_sent;
    int n_ended;
};

gw_tok_resp_t *gw_tok_resp_new(const gw_tok_req_t *tr, gw_vocab_t *v, const int64_t *prompt_ids,
                               size_t n_prompt, const char *model, size_t model_len)
{
    gw_tok_resp_t *r = gw_xcalloc(1, sizeof(*r));

    r->tr = *tr;
    r->tr.stop_ids = gw_xcalloc(tr->n_stop_ids + 1, sizeof(int64_t));
    if (tr->n_stop_ids)
        memcpy(r->tr.stop_ids, tr->stop_ids, tr->n_stop_ids * sizeof(int64_t));
    r->tr.special_ids = gw_xcalloc(tr->n_special_ids + 1, sizeof(int64_t));
    if (tr->n_special_ids)
        memcpy(r->tr.special_ids, tr->special_ids, tr->n_special_ids * sizeof(int64_t));
    r->tr.stops = json_incref(tr->stops);
    r->vocab = v;
    gw_vocab_ref(v);
    if (prompt_ids) {
        r->prompt = gw_xcalloc(n_prompt + 1, sizeof(int64_t));
        if (n_prompt)
            memcpy(r->prompt, prompt_ids, n_prompt * sizeof(int64_t));
        r->n_prompt = n_prompt;
        r->have_prompt = 1;
    }
    r->model = gw_xstrndup(model, model_len);
    r->model_len = model_len;
    return r;
}

void gw_tok_resp_free(gw_tok_resp_t *r)
{
    int i;

    if (r == NULL)
        return;
    for (i = 0; i < GW_TOK_MAX_CHOICES; i++)
        json_decref(r->ch[i].missing);
    gw_tok_req_free(&r->tr);
    free(r->prompt);
    free(r->model);
    gw_vocab_unref(r->vocab);
    free(r);
}

static int is_stop_id(const gw_tok_resp_t *r, int64_t id)
{
    size_t i;

    for (i = 0; i < r->tr.n_stop_ids; i++)
        if (r->tr.stop_ids[i] == id)
            return 1;
    return 0;
}

/* position (size_t)-1: unknown */
static void add_missing(choice_state_t *st, size_t position, size_t count, const char *reason)
{
    if (st->missing == NULL)
        st->missing = json_array();
    json_array_append_new(st->missing,
                          json_pack("{s:o, s:I, s:s}", "position",
                                    position == (size_t)-1 ? json_null()
                                                           : json_integer((json_int_t)position),
                                    "count", (json_int_t)count, "reason", reason));
}

/* The span of the top-level object of a document. */
static void top_span(const char *src, size_t len, size_t *off, size_t *olen)
{
    size_t i = 0, end;

    while (i < len && (src[i] == ' ' || src[i] == '\n' || src[i] == '\r' || src[i] == '\t'))
        i++;
    end = gw_json_skip(src, len, i);
    *off = i;
    *olen = end == (size_t)-1 ? len - i : end - i;
}

/* An item's raw bytes (its `bytes` array; else its `token` string). */
static size_t item_bytes(json_t *item, char *buf, size_t cap)
{
    json_t *b = json_object_get(item, "bytes"), *x;
    size_t i, n = 0;

    if (json_is_array(b)) {
        json_array_foreach(b, i, x)
        {
            if (n < cap)
                buf[n++] = (char)json_integer_value(x);
        }
        return n;
    }
    b = json_object_get(item, "token");
    n = json_string_length(b);
    if (n > cap)
        n = cap;
    memcpy(buf, json_string_value(b) ? json_string_value(b) : "", n);
    return n;
}

/*
 * `missing` tokens got no item before `item`. Their text, if any, was released inside
 * this item: recover their IDs when that text splits into exactly `missing` vocabulary
 * pieces in exactly one way; otherwise record the gap. Returns 1 when the gap had no
 * text at all (tokens llama-server renders as "", i.e. control tokens), else 0.
 */
static int recover_gap(gw_tok_resp_t *r, choice_state_t *st, json_t *item, size_t missing,
                       idvec_t *out)
{
    char buf[8192], comb[12288];
    size_t n = st->n_pending, plen, i, k;
    const char *piece = gw_vocab_piece(r->vocab, json_integer_value(json_object_get(item, "id")),
                                       &plen);

    /* the missing tokens' text: whatever came without items, then what this item
     * carries before its own piece */
    if (st->pending_bad && n > 0) {
        add_missing(st, st->accounted, missing, "text_reshaped_by_parser");
        st->accounted += missing;
        st->n_pending = 0;
        return 0;
    }
    memcpy(buf, st->pending, n);
    n += item_bytes(item, buf + n, sizeof(buf) - n);
    st->n_pending = 0;
    int32_t ids[64], found[64];
    int n_found = 0, textless = 0;
    json_t *w;

    if (piece && n >= plen && memcmp(buf + n - plen, piece, plen) == 0) {
        size_t pre = n - plen;

        if (pre == 0) {
            textless = 1; /* the caller decides: a listed control token, or a gap */
        } else if (missing <= 64 && gw_vocab_split(r->vocab, buf, pre, missing, ids) == 1) {
            for (i = 0; i < missing; i++)
                idvec_push(out, ids[i]);
        } else {
            add_missing(st, st->accounted, missing, "ambiguous_text");
        }
        if (!textless)
            st->accounted += missing;
        return textless;
    }
    /* the item's token completed a stop string: its text was cut at the match. The held
     * text plus this token's piece is (sent text + stop string) up to some overlap k
     * with the start of the piece, followed by the rest of the piece. */
    json_array_foreach(r->tr.stops, i, w)
    {
        size_t wl = json_string_length(w), cl = n + wl;

        if (piece == NULL || cl > sizeof(comb) || missing > 64)
            break;
        memcpy(comb, buf, n);
        memcpy(comb + n, json_string_value(w), wl);
        for (k = 1; k <= plen && k <= cl; k++) {
            if (memcmp(comb + cl - k, piece, k) != 0)
                continue;
            if (gw_vocab_split(r->vocab, comb, cl - k, missing, ids) == 1) {
                if (n_found == 0)
                    memcpy(found, ids, missing * sizeof(int32_t));
                else if (memcmp(found, ids, missing * sizeof(int32_t)) != 0)
                    n_found = 2; /* two readings disagree */
                if (n_found < 2)
                    n_found = 1;
            }
        }
    }
    if (n_found == 1) {
        for (i = 0; i < missing; i++)
            idvec_push(out, found[i]);
    } else {
        add_missing(st, st->accounted, missing, n_found ? "ambiguous_text" : "unmatched_text");
    }
    st->accounted += missing;
    return 0;
}

static void ids_json(gw_buf_t *b, const int64_t *v, size_t n)
{
    size_t i;

    gw_buf_add(b, "[", 1);
    for (i = 0; i < n; i++)
        gw_buf_addf(b, i ? ",%lld" : "%lld", (long long)v[i]);
    gw_buf_add(b, "]", 1);
}

static void append_member_json(gw_jedit_t *e, const char *src, size_t off, size_t len,
                               const char *key, json_t *val)
{
    char *s = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);

    gw_jedit_append_member(e, src, off, len, key, s, strlen(s));
    free(s);
}

static void append_member_ids(gw_jedit_t *e, const char *src, size_t off, size_t len,
                              const char *key, const int64_t *v, size_t n)
{
    gw_buf_t b;

    gw_buf_init(&b, (size_t)-1 / 2);
    ids_json(&b, v, n);
    gw_jedit_append_member(e, src, off, len, key, b.ptr, b.len);
    gw_buf_free(&b);
}

static void remove_member(gw_jedit_t *e, const char *src, size_t len, size_t obj_off,
                          const char *key)
{
    gw_jspan_t m;

    if (gw_json_member(src, len, obj_off, key, &m) == 1)
        gw_jedit_remove_member(e, src, len, obj_off, &m);
}

static void set_model(gw_tok_resp_t *r, gw_jedit_t *e, const char *src, size_t len)
{
    gw_jspan_t m;
    gw_buf_t b;

    if (gw_json_member(src, len, 0, "model", &m) != 1 || !gw_json_span_is_string(src, &m))
        return;
    gw_buf_init(&b, (size_t)-1 / 2);
    gw_buf_add_json_str(&b, r->model, r->model_len);
    gw_jedit_splice(e, m.val_off, m.val_len, b.ptr, b.len);
    gw_buf_free(&b);
}

/* Replaces every top_logprobs array inside a logprobs member with [] (the client asked
 * for top_logprobs 0; llama-server needs at least 1). */
static void empty_top_logprobs(gw_jedit_t *e, const char *src, size_t len, const gw_jspan_t *lp)
{
    gw_jspan_t content, el, top;
    size_t it = 0;

    if (gw_json_member(src, len, lp->val_off, "content", &content) != 1)
        return;
    while (gw_json_array_next(src, len, content.val_off, &it, &el) == 1)
        if (gw_json_member(src, len, el.val_off, "top_logprobs", &top) == 1)
            gw_jedit_splice(e, top.val_off, top.val_len, "[]", 2);
}

static void emit_event(gw_buf_t *out, const char *json, size_t len)
{
    gw_buf_add(out, "data: ", 6);
    gw_buf_add(out, json, len);
    gw_buf_add(out, "\n\n", 2);
}

static json_t *get_path(json_t *o, const char *a, const char *b)
{
    return json_object_get(json_object_get(o, a), b);
}

/* The synthetic end of a choice the gateway stopped at a listed token ID. */
static void emit_stop_finish(gw_tok_resp_t *r, json_t *chunk, int idx, choice_state_t *st,
                             gw_buf_t *out)
{
    json_t *c = json_object(), *choice = json_object(), *arr = json_array();
    const char *keys[] = {"created", "id", "system_fingerprint", "object", NULL};
    char *s;
    int i;
    size_t prompt_tokens = r->have_prompt ? r->n_prompt : 0;
    json_t *usage = json_pack("{s:I, s:I, s:I}", "completion_tokens", (json_int_t)st->accounted,
                              "prompt_tokens", (json_int_t)prompt_tokens, "total_tokens",
                              (json_int_t)(st->accounted + prompt_tokens));

    if (r->tr.chat) {
        json_object_set_new(choice, "finish_reason", json_string("stop"));
        json_object_set_new(choice, "index", json_integer(idx));
        json_object_set_new(choice, "delta", json_object());
    } else {
        json_object_set_new(choice, "text", json_string(""));
        json_object_set_new(choice, "index", json_integer(idx));
        json_object_set_new(choice, "logprobs", json_null());
        json_object_set_new(choice, "finish_reason", json_string("stop"));
    }
    json_object_set_new(choice, "stop_reason",
                        st->stop_id >= 0 ? json_integer(st->stop_id) : json_null());
    if (r->tr.want_ids) {
        json_t *ids = json_array();

        if (st->inferred && st->stop_id >= 0)
            json_array_append_new(ids, json_integer(st->stop_id));
        json_object_set_new(choice, "token_ids", ids);
        json_object_set_new(choice, "token_ids_complete", json_boolean(st->missing == NULL));
        if (st->missing)
            json_object_set(choice, "token_ids_missing", st->missing);
    }
    json_array_append_new(arr, choice);
    json_object_set_new(c, "choices", arr);
    for (i = 0; keys[i]; i++) {
        json_t *v = json_object_get(chunk, keys[i]);

        if (v)
            json_object_set(c, keys[i], v);
        if (i == 1)
            json_object_set_new(c, "model", json_stringn(r->model, r->model_len));
    }
    if (!r->tr.chat)
        json_object_set(c, "usage", usage);
    s = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER);
    emit_event(out, s, strlen(s));
    free(s);
    if (r->tr.chat && r->tr.include_usage) {
        json_object_set_new(c, "choices", json_array());
        json_object_set(c, "usage", usage);
        s = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER);
        emit_event(out, s, strlen(s));
        free(s);
    }
    json_decref(usage);
    json_decref(c);
}

/* End-of-choice gap: tokens decoded after the last item (EOG, stop-string tokens). */
static int64_t end_gap(gw_tok_resp_t *r, choice_state_t *st, json_t *verbose,
                       const char *finish, long long predicted, idvec_t *out,
                       json_t **stop_reason)
{
    int64_t included = -1;
    const char *stop_type = json_string_value(json_object_get(verbose, "stop_type"));
    json_t *word = json_object_get(verbose, "stopping_word");
    size_t missing = predicted > (long long)st->accounted ? (size_t)predicted - st->accounted : 0;
    int is_word = stop_type && strcmp(stop_type, "word") == 0 && json_string_length(word) > 0;

    *stop_reason = json_null();
    if (is_word)
        *stop_reason = json_incref(word);
    if (missing == 0)
        return -1;
    if (st->n_pending > 0 && !is_word && !st->pending_bad) {
        /* tokens whose text came without items (speculative decoding), then maybe the
         * end-of-generation token, which has no text */
        int32_t ids[64];
        int eog = finish && strcmp(finish, "stop") == 0;
        size_t k = missing - (eog ? 1 : 0), i;

        if (k > 0 && k <= 64 && gw_vocab_split(r->vocab, st->pending, st->n_pending, k, ids) == 1) {
            for (i = 0; i < k; i++)
                idvec_push(out, ids[i]);
            st->accounted += k;
            missing -= k;
        }
        st->n_pending = 0;
        if (missing == 0)
            return -1;
    }
    if (is_word && missing == 1) {
        int32_t id;

        /* llama-server sent none of this token's text, so the text starts with the stop
         * string: unique when exactly one vocabulary piece starts with it */
        if (gw_vocab_count_prefixed(r->vocab, json_string_value(word), json_string_length(word),
                                    &id) == 1) {
            idvec_push(out, id);
            if (is_stop_id(r, id)) {
                json_decref(*stop_reason);
                *stop_reason = json_integer(id);
                included = id;
            }
        } else {
            add_missing(st, st->accounted, 1, "stop_string_token_ambiguous");
        }
    } else if (is_word) {
        add_missing(st, st->accounted, missing, "held_back_stop_string_tokens");
    } else if (finish && strcmp(finish, "stop") == 0) {
        add_missing(st, st->accounted, missing, "end_of_generation_token_not_reported");
    } else {
        add_missing(st, st->accounted, missing, "tokens_not_reported");
    }
    st->accounted += missing;
    return included;
}

int gw_tok_resp_event(gw_tok_resp_t *r, const char *data, size_t len, gw_buf_t *out)
{
    json_t *root, *choices, *timings, *verbose;
    gw_jedit_t e;
    gw_jspan_t chs, el;
    size_t it = 0, k = 0, dropped = 0, n_choices;
    long long predicted = -1;
    int rc = GW_TOK_CONTINUE, any_finish = 0, stop_now = 0;
    json_t *stop_chunks[GW_TOK_MAX_CHOICES] = {0};
    int stop_idx[GW_TOK_MAX_CHOICES];
    int n_stops = 0, i;

    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        if (!r->done_sent) {
            r->done_sent = 1;
            emit_event(out, data, len);
        }
        return GW_TOK_CONTINUE;
    }
    if (r->done_sent)
        return GW_TOK_STOP; /* the gateway already ended the stream */
    root = json_loadb(data, len, 0, NULL);
    if (!json_is_object(root) || json_object_get(root, "error") ||
        !json_is_array(json_object_get(root, "choices"))) {
        /* not a completion chunk (an error event...): pass it, with the model name */
        gw_jedit_init(&e);
        if (json_is_object(root))
            set_model(r, &e, data, len);
        gw_buf_add(out, "data: ", 6);
        gw_jedit_apply(&e, data, len, out);
        gw_buf_add(out, "\n\n", 2);
        gw_jedit_free(&e);
        json_decref(root);
        return GW_TOK_CONTINUE;
    }
    choices = json_object_get(root, "choices");
    n_choices = json_array_size(choices);
    timings = json_object_get(root, "timings");
    verbose = json_object_get(root, "__verbose");
    if (json_is_integer(json_object_get(timings, "predicted_n")))
        predicted = json_integer_value(json_object_get(timings, "predicted_n"));

    if (n_choices == 0) {
        /* the usage chunk, asked for by the gateway: drop it unless the client asked */
        if (!r->tr.include_usage) {
            json_decref(root);
            return GW_TOK_CONTINUE;
        }
    }

    gw_jedit_init(&e);
    set_model(r, &e, data, len);
    if (verbose && !r->tr.verbose)
        remove_member(&e, data, len, 0, "__verbose");
    if (gw_json_member(data, len, 0, "choices", &chs) != 1)
        goto pass;

    while (gw_json_array_next(data, len, chs.val_off, &it, &el) == 1) {
        json_t *c = json_array_get(choices, k++);
        json_t *items = get_path(c, "logprobs", "content");
        json_t *fr = json_object_get(c, "finish_reason");
        int idx = (int)json_integer_value(json_object_get(c, "index"));
        choice_state_t *st;
        idvec_t ids = {0};
        size_t n_items = json_array_size(items), j, stop_at = (size_t)-1;
        gw_jspan_t lp;

        if (idx < 0 || idx >= GW_TOK_MAX_CHOICES)
            continue;
        st = &r->ch[idx];
        if (st->ended_by_id) {
            /* after the gateway's stop: drop this choice's later chunks */
            dropped++;
            gw_jedit_remove_member(&e, data, len, chs.val_off, &el);
            continue;
        }
        if (r->tr.chat) {
            const char *key;
            json_t *v;

            json_object_foreach(json_object_get(c, "delta"), key, v)
            {
                if (strcmp(key, "role") != 0 && strcmp(key, "content") != 0)
                    st->pending_bad = 1;
            }
            if (r->tr.tools_stream)
                st->pending_bad = 1;
        }
        if (n_items == 0 && !json_is_string(fr)) {
            json_t *t = r->tr.chat ? get_path(c, "delta", "content") : json_object_get(c, "text");
            size_t tl = json_string_length(t);

            if (tl > 0 && st->n_pending + tl <= sizeof(st->pending)) {
                memcpy(st->pending + st->n_pending, json_string_value(t), tl);
                st->n_pending += tl;
            } else if (tl > 0) {
                st->pending_bad = 1; /* too much to hold: do not guess from a part */
            }
        }
        if (n_items > 0) {
            json_t *item;

            if (predicted < 0 || (size_t)predicted <= st->accounted + n_items)
                st->n_pending = 0; /* no gap: that text was this token's own */
            if (predicted >= 0 && (size_t)predicted > st->accounted + n_items) {
                size_t gap = (size_t)predicted - st->accounted - n_items;

                if (recover_gap(r, st, json_array_get(items, 0), gap, &ids)) {
                    if (r->tr.n_special_ids > 0) {
                        /* a token rendered as "" (a control token) while the request lists
                         * control tokens as stops: llama-server does not say which one, so
                         * the listed one is inferred. Nothing after it reaches the client. */
                        st->ended_by_id = 1;
                        st->inferred = 1;
                        st->stop_id = r->tr.n_special_ids == 1 ? r->tr.special_ids[0] : -1;
                        add_missing(st, st->accounted, gap,
                                    r->tr.n_special_ids == 1 ? "stop_token_inferred"
                                                             : "stop_token_not_reported");
                        st->accounted += gap;
                        if (n_stops < GW_TOK_MAX_CHOICES) {
                            stop_chunks[n_stops] = root;
                            stop_idx[n_stops++] = idx;
                        }
                        stop_now = 1;
                        dropped++;
                        gw_jedit_remove_member(&e, data, len, chs.val_off, &el);
                        free(ids.v);
                        continue;
                    }
                    add_missing(st, st->accounted, gap, "token_without_text");
                    st->accounted += gap;
                }
            }
            json_array_foreach(items, j, item)
            {
                int64_t id = json_integer_value(json_object_get(item, "id"));

                idvec_push(&ids, id);
                st->accounted++;
                st->n_items++;
                if (is_stop_id(r, id)) {
                    stop_at = j;
                    break;
                }
            }
        }
        if (stop_at != (size_t)-1) {
            st->ended_by_id = 1;
            st->stop_id = ids.v[ids.n - 1];
            if (n_stops < GW_TOK_MAX_CHOICES) {
                stop_chunks[n_stops] = root;
                stop_idx[n_stops++] = idx;
            }
            stop_now = 1;
        }
        if (json_is_string(fr) && !st->finished && !st->ended_by_id) {
            json_t *stop_reason = NULL;
            int64_t incl = end_gap(r, st, verbose, json_string_value(fr), predicted, &ids,
                                   &stop_reason);
            size_t plen;
            const char *piece = incl >= 0 ? gw_vocab_piece(r->vocab, incl, &plen) : NULL;

            if (piece && plen > 0) {
                /* a listed stop token that is not special: its text is part of the output
                 * (vLLM's rule); llama-server cut it as a stop string */
                gw_jspan_t m;
                gw_buf_t lit;

                gw_buf_init(&lit, (size_t)-1 / 2);
                if (r->tr.chat && gw_json_member(data, len, el.val_off, "delta", &m) == 1) {
                    gw_buf_adds(&lit, "{\"content\":");
                    gw_buf_add_json_str(&lit, piece, plen);
                    gw_buf_adds(&lit, "}");
                } else if (!r->tr.chat && gw_json_member(data, len, el.val_off, "text", &m) == 1) {
                    gw_buf_add_json_str(&lit, piece, plen);
                }
                if (lit.len)
                    gw_jedit_splice(&e, m.val_off, m.val_len, lit.ptr, lit.len);
                gw_buf_free(&lit);
            }
            append_member_json(&e, data, el.val_off, el.val_len, "stop_reason", stop_reason);
            json_decref(stop_reason);
            st->finished = 1;
            any_finish = 1;
            r->n_ended++;
            if (r->tr.want_ids) {
                json_t *b = json_boolean(st->missing == NULL);

                append_member_json(&e, data, el.val_off, el.val_len, "token_ids_complete", b);
                json_decref(b);
                if (st->missing)
                    append_member_json(&e, data, el.val_off, el.val_len, "token_ids_missing",
                                       st->missing);
            }
        }
        if (r->tr.want_ids) {
            append_member_ids(&e, data, el.val_off, el.val_len, "token_ids", ids.v, ids.n);
            if (!r->tr.chat && !st->sent_first && r->have_prompt)
                append_member_ids(&e, data, el.val_off, el.val_len, "prompt_token_ids", r->prompt,
                                  r->n_prompt);
        }
        st->sent_first = 1;
        if (gw_json_member(data, len, el.val_off, "logprobs", &lp) == 1) {
            if (!r->tr.client_logprobs) {
                if (r->tr.chat)
                    gw_jedit_remove_member(&e, data, len, el.val_off, &lp);
                else
                    gw_jedit_splice(&e, lp.val_off, lp.val_len, "null", 4);
            } else if (r->tr.client_top_zero) {
                empty_top_logprobs(&e, data, len, &lp);
            }
        }
        free(ids.v);
    }
    if (dropped == n_choices && n_choices > 0)
        goto stops; /* nothing of this chunk reaches the client */
    if (r->tr.chat && r->tr.want_ids && !r->sent_first_chunk && r->have_prompt) {
        size_t to, tl;

        top_span(data, len, &to, &tl);
        append_member_ids(&e, data, to, tl, "prompt_token_ids", r->prompt, r->n_prompt);
    }
    r->sent_first_chunk = 1;
    /* timings: on every chunk only when the client asked timings_per_token; otherwise
     * where llama-server puts them (the last chunk: the usage chunk if the client gets
     * one, else the finish chunk) */
    if (timings && !r->tr.timings_per_token) {
        int keep = n_choices == 0 || (any_finish && !(r->tr.chat && r->tr.include_usage));

        if (!keep)
            remove_member(&e, data, len, 0, "timings");
    }
pass:
    gw_buf_add(out, "data: ", 6);
    gw_jedit_apply(&e, data, len, out);
    gw_buf_add(out, "\n\n", 2);
stops:
    gw_jedit_free(&e);

    for (i = 0; i < n_stops; i++) {
        emit_stop_finish(r, stop_chunks[i], stop_idx[i], &r->ch[stop_idx[i]], out);
        r->n_ended++;
    }
    if (stop_now && r->n_ended >= r->tr.n_choices) {
        emit_event(out, "[DONE]", 6);
        r->done_sent = 1;
        rc = GW_TOK_STOP;
    }
    json_decref(root);
    return rc;
}

/* ================================================================ non-stream = */

/* Text of the content member (chat: message.content; completions: text), raw bytes. */
static json_t *content_of(const gw_tok_resp_t *r, json_t *c)
{
    return r->tr.chat ? get_path(c, "message", "content") : json_object_get(c, "text");
}

/* Non-stream: replaces a choice's text (chat message.content, completions text). */
static void set_choice_text(const gw_tok_resp_t *r, gw_jedit_t *e, const char *body, size_t len,
                            const gw_jspan_t *el, const char *text, size_t tlen)
{
    gw_jspan_t cs, msg;
    gw_buf_t lit;
    int found;

    if (r->tr.chat)
        found = gw_json_member(body, len, el->val_off, "message", &msg) == 1 &&
                gw_json_member(body, len, msg.val_off, "content", &cs) == 1;
    else
        found = gw_json_member(body, len, el->val_off, "text", &cs) == 1;
    if (!found)
        return;
    gw_buf_init(&lit, (size_t)-1 / 2);
    gw_buf_add_json_str(&lit, text, tlen);
    gw_jedit_splice(e, cs.val_off, cs.val_len, lit.ptr, lit.len);
    gw_buf_free(&lit);
}

void gw_tok_resp_body(gw_tok_resp_t *r, const char *body, size_t len, gw_buf_t *out)
{
    json_t *root = json_loadb(body, len, 0, NULL), *choices, *verbose, *usage;
    gw_jedit_t e;
    gw_jspan_t chs, el;
    size_t it = 0, k = 0;
    long long completion_tokens = -1, total_items = 0;

    if (!json_is_object(root) || !json_is_array(json_object_get(root, "choices"))) {
        gw_buf_add(out, body, len);
        json_decref(root);
        return;
    }
    choices = json_object_get(root, "choices");
    verbose = json_object_get(root, "__verbose");
    usage = json_object_get(root, "usage");
    if (json_is_integer(json_object_get(usage, "completion_tokens")))
        completion_tokens = json_integer_value(json_object_get(usage, "completion_tokens"));

    {
        json_t *c;
        size_t q;

        json_array_foreach(choices, q, c)
            total_items += (long long)json_array_size(get_path(c, "logprobs", "content"));
    }
    gw_jedit_init(&e);
    set_model(r, &e, body, len);
    if (verbose && !r->tr.verbose)
        remove_member(&e, body, len, 0, "__verbose");
    if (gw_json_member(body, len, 0, "choices", &chs) != 1)
        goto emit;
    while (gw_json_array_next(body, len, chs.val_off, &it, &el) == 1) {
        json_t *c = json_array_get(choices, k++), *items = get_path(c, "logprobs", "content");
        json_t *vt = json_object_get(verbose, "tokens"), *item, *stop_reason = json_null();
        const char *finish = json_string_value(json_object_get(c, "finish_reason"));
        choice_state_t st;
        idvec_t ids = {0};
        size_t j, cut = (size_t)-1;
        gw_jspan_t lp;

        memset(&st, 0, sizeof(st));
        if (json_array_size(choices) == 1 && json_is_array(vt) && json_array_size(vt) > 0 &&
            (completion_tokens < 0 || (long long)json_array_size(vt) == completion_tokens)) {
            /* the complete list (newer llama-server) */
            json_array_foreach(vt, j, item) idvec_push(&ids, json_integer_value(item));
        } else {
            /* items only (older llama-server, or n > 1): exact when every token has an
             * item; usage counts all choices together */
            json_array_foreach(items, j, item)
                idvec_push(&ids, json_integer_value(json_object_get(item, "id")));
            if (completion_tokens >= 0 && total_items < completion_tokens)
                add_missing(&st, (size_t)-1, (size_t)(completion_tokens - total_items),
                            json_array_size(choices) > 1 ? "tokens_not_reported_in_some_choice"
                                                         : "tokens_not_reported");
        }
        /* the first listed stop token ends the choice there */
        for (j = 0; j < ids.n; j++) {
            if (is_stop_id(r, ids.v[j])) {
                cut = j;
                break;
            }
        }
        if (cut != (size_t)-1) {
            const char *stop_type = json_string_value(json_object_get(verbose, "stop_type"));
            json_t *word = json_object_get(verbose, "stopping_word");
            size_t plen;
            const char *piece = gw_vocab_piece(r->vocab, ids.v[cut], &plen);
            json_t *content = content_of(r, c);

            stop_reason = json_integer(ids.v[cut]);
            if (cut + 1 == ids.n && stop_type && strcmp(stop_type, "word") == 0 && piece &&
                plen > 0 && json_string_length(word) == plen &&
                memcmp(json_string_value(word), piece, plen) == 0 && json_is_string(content)) {
                /* llama-server stopped at the stop token's text and cut it; the token is not
                 * special, so its text belongs to the output (vLLM's rule) */
                gw_buf_t txt;

                gw_buf_init(&txt, (size_t)-1 / 2);
                gw_buf_add(&txt, json_string_value(content), json_string_length(content));
                gw_buf_add(&txt, piece, plen);
                set_choice_text(r, &e, body, len, &el, txt.ptr, txt.len);
                gw_buf_free(&txt);
            }
            if (cut + 1 < ids.n) {
                /* the backend went on (a special token cannot stop it by text): cut the
                 * text after the stop token, using the items to map tokens to text */
                gw_buf_t text, all;
                size_t q = 0, n_items = json_array_size(items);
                char buf[4096];

                gw_buf_init(&text, (size_t)-1 / 2);
                gw_buf_init(&all, (size_t)-1 / 2);
                json_array_foreach(items, j, item)
                    gw_buf_add(&all, buf, item_bytes(item, buf, sizeof(buf)));
                for (j = 0; j <= cut && q < n_items; j++) {
                    item = json_array_get(items, q);
                    if (json_integer_value(json_object_get(item, "id")) == ids.v[j]) {
                        gw_buf_add(&text, buf, item_bytes(item, buf, sizeof(buf)));
                        q++;
                    }
                }
                json_t *valid = json_stringn(text.ptr ? text.ptr : "", text.len);

                if (json_is_string(content) && all.len == json_string_length(content) &&
                    memcmp(all.ptr ? all.ptr : "", json_string_value(content), all.len) == 0 &&
                    valid != NULL) {
                    set_choice_text(r, &e, body, len, &el, text.ptr ? text.ptr : "", text.len);
                    {
                        gw_jspan_t fs;

                        if (gw_json_member(body, len, el.val_off, "finish_reason", &fs) == 1)
                            gw_jedit_splice(&e, fs.val_off, fs.val_len, "\"stop\"", 6);
                    }
                    /* logprobs items after the stop token go too: removed in place, so
                     * the kept ones stay byte for byte */
                    if (r->tr.client_logprobs &&
                        gw_json_member(body, len, el.val_off, "logprobs", &lp) == 1) {
                        gw_jspan_t lc, it_el;
                        size_t ai = 0, n_el = 0;

                        if (gw_json_member(body, len, lp.val_off, "content", &lc) == 1)
                            while (gw_json_array_next(body, len, lc.val_off, &ai, &it_el) == 1)
                                if (n_el++ >= q)
                                    gw_jedit_remove_member(&e, body, len, lc.val_off, &it_el);
                    }
                    /* usage counts what the client got */
                    {
                        gw_jspan_t us, ct, tt, pt;
                        char num[32];
                        long long pt_v = json_integer_value(json_object_get(usage,
                                                                            "prompt_tokens"));

                        if (gw_json_member(body, len, 0, "usage", &us) == 1 &&
                            gw_json_member(body, len, us.val_off, "completion_tokens", &ct) == 1) {
                            snprintf(num, sizeof(num), "%zu", cut + 1);
                            gw_jedit_splice(&e, ct.val_off, ct.val_len, num, strlen(num));
                            if (gw_json_member(body, len, us.val_off, "total_tokens", &tt) == 1 &&
                                gw_json_member(body, len, us.val_off, "prompt_tokens", &pt) == 1) {
                                snprintf(num, sizeof(num), "%lld", pt_v + (long long)cut + 1);
                                gw_jedit_splice(&e, tt.val_off, tt.val_len, num, strlen(num));
                            }
                        }
                    }
                    ids.n = cut + 1;
                    if (st.missing) {
                        json_decref(st.missing);
                        st.missing = NULL;
                    }
                } else {
                    add_missing(&st, cut + 1, ids.n - cut - 1, "could_not_cut_text_at_stop");
                }
                json_decref(valid);
                gw_buf_free(&text);
                gw_buf_free(&all);
            }
        } else if (finish && strcmp(finish, "stop") == 0) {
            const char *stop_type = json_string_value(json_object_get(verbose, "stop_type"));
            json_t *word = json_object_get(verbose, "stopping_word");

            if (stop_type && strcmp(stop_type, "word") == 0 && json_string_length(word) > 0)
                stop_reason = json_incref(word);
        }
        append_member_json(&e, body, el.val_off, el.val_len, "stop_reason", stop_reason);
        json_decref(stop_reason);
        if (r->tr.want_ids) {
            json_t *b = json_boolean(st.missing == NULL);

            append_member_ids(&e, body, el.val_off, el.val_len, "token_ids", ids.v, ids.n);
            append_member_json(&e, body, el.val_off, el.val_len, "token_ids_complete", b);
            json_decref(b);
            if (st.missing)
                append_member_json(&e, body, el.val_off, el.val_len, "token_ids_missing",
                                   st.missing);
            if (!r->tr.chat && r->have_prompt)
                append_member_ids(&e, body, el.val_off, el.val_len, "prompt_token_ids", r->prompt,
                                  r->n_prompt);
        }
        if (!r->tr.client_logprobs && gw_json_member(body, len, el.val_off, "logprobs", &lp) == 1) {
            if (r->tr.chat)
                gw_jedit_remove_member(&e, body, len, el.val_off, &lp);
            else
                gw_jedit_splice(&e, lp.val_off, lp.val_len, "null", 4);
        } else if (r->tr.client_top_zero &&
                   gw_json_member(body, len, el.val_off, "logprobs", &lp) == 1) {
            empty_top_logprobs(&e, body, len, &lp);
        }
        json_decref(st.missing);
        free(ids.v);
    }
    if (r->tr.chat && r->tr.want_ids && r->have_prompt) {
        size_t to, tl;

        top_span(body, len, &to, &tl);
        append_member_ids(&e, body, to, tl, "prompt_token_ids", r->prompt, r->n_prompt);
    }
emit:
    {
        size_t start = out->len;

        if (gw_jedit_apply(&e, body, len, out) != 0) {
            /* cannot happen with well-formed edits: pass the backend's body */
            out->len = start;
            gw_buf_add(out, body, len);
        }
    }
    gw_jedit_free(&e);
    json_decref(root);
}
