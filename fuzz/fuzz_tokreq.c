/*
 * fuzz_tokreq.c - libFuzzer target for the token-ID request rewrite: gw_tok_req_body
 * (openai/tokids.c), which splices the client's bytes (core/jedit.c gw_jedit_object over
 * core/jspan.c's member walk) into the body sent upstream.
 *
 * Input: byte 0 picks the endpoint (even: chat, odd: completions), the rest is the body
 * as the client sent it. It reaches the rewrite only the way it does in the gateway
 * (http/server.c h_oai, http/tokpath.c): gw_json_depth_ok at the default
 * limits.max_json_depth, the fast path declining (gw_oai_check), gw_oai_parse, then
 * gw_tok_req_detect with the default limits.max_stop_token_ids; the vocabulary is the
 * small one of tests/unit/check_tokids.c. Properties (abort() on a violation):
 *   0. when the fast path accepts a body, its tree does not ask for the token-ID path;
 *   1. gw_tok_req_body returns GW_OK, or GW_EPARAM (param stop_token_ids) exactly when a
 *      stop ID is outside the vocabulary, at the gateway's ceiling; the parsed request is
 *      left as it was. (A raw NUL byte, which jansson skips right after a number or a
 *      literal, is refused by gw_oai_parse itself: the fuzzer found it.)
 *   2. on GW_OK the output is JSON (jansson), and equal (json_equal) to the tree-based
 *      rewrite the gateway used before splicing (tests/support/tok_reference.c);
 *   3. the top-level members, walked here by a scanner independent of core/jspan.c and
 *      keys decoded by jansson: the members the gateway does not own come out as the
 *      client wrote them, every occurrence (duplicates too), key and value bytes
 *      identical, in the same order; each owned member at most once, never
 *      return_token_ids or stop_token_ids, at its first occurrence's place among the
 *      others when the client sent it, after all of them when appended;
 *   4. the same call with a ceiling one byte short of that output fails with GW_ETOOBIG,
 *      and with the exact ceiling gives the same bytes again.
 * Everything is freed (the fuzz build runs LeakSanitizer).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/jspan.h"
#include "core/vocab.h"
#include "core/jcheck.h"
#include "openai/request.h"
#include "openai/tokids.h"
#include "tok_reference.h"

#define MAX_JSON_DEPTH 128   /* limits.max_json_depth's default (conf/conf.c) */
#define MAX_STOP_IDS 64      /* limits.max_stop_token_ids's default */
#define MAX_BODY (16u << 20) /* limits.max_body_bytes's default: tokpath's ceiling */
#define MAX_MEMBERS 4096

/* check_tokids.c's vocabulary: control tokens, lone UTF-8 bytes, a quote, "" */
static const char *const PIECES[] = {
    "<unk>", "<s>", "</s>", "<|end|>", "<|placeholder1|>",
    "\xF0", "\x9F", "\x98", "\x80",
    " faces", "\xE3\x83\xA0", "merge", "mer", "ge",
    " view", " COM", "azz", " peak", "a", "b", "ab",
    "\n", "x\"y", "",
};
#define N_PIECES (sizeof(PIECES) / sizeof(PIECES[0]))

static const char *const OWNED[] = {
    "return_token_ids", "stop_token_ids", "stop", "logprobs", "top_logprobs", "verbose",
    "timings_per_token", "stream_options", "return_tokens",
};
#define N_OWNED (sizeof(OWNED) / sizeof(OWNED[0]))

static gw_vocab_t *vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    size_t lens[N_PIECES], i;

    (void)argc;
    (void)argv;
    json_object_seed(1);
    for (i = 0; i < N_PIECES; i++)
        lens[i] = strlen(PIECES[i]);
    vocab = gw_vocab_from_pieces(PIECES, lens, N_PIECES);
    return vocab ? 0 : 1;
}


/* ---- an independent top-level member walk over JSON that jansson accepted ---- */

typedef struct member {
    size_t key_off, key_len; /* the key with its quotes */
    size_t val_off, val_len;
    int owned;               /* index in OWNED, or -1 */
} member_t;

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The index just past the string whose opening quote is p[i]. */
static size_t skip_string(const char *p, size_t len, size_t i)
{
    for (i++; i < len && p[i] != '"'; i++)
        if (p[i] == '\\')
            i++;
    return i + 1;
}

/* The end of the value at p[i]: the next ',' or '}' at depth 0, trailing space trimmed. */
static size_t skip_value(const char *p, size_t len, size_t i)
{
    size_t depth = 0, end;

    while (i < len) {
        char c = p[i];

        if (c == '"') {
            i = skip_string(p, len, i);
            continue;
        }
        if (depth == 0 && (c == ',' || c == '}'))
            break;
        if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
        i++;
    }
    end = i;
    while (is_ws(p[end - 1]))
        end--;
    return end;
}

/* The OWNED index of the key (decoded by jansson), or -1. */
static int owned_index(const char *key, size_t key_len)
{
    json_t *k = json_loadb(key, key_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    size_t i;
    int r = -1;

    if (!json_is_string(k))
        abort();
    for (i = 0; i < N_OWNED && r < 0; i++)
        if (json_string_length(k) == strlen(OWNED[i]) &&
            memcmp(json_string_value(k), OWNED[i], json_string_length(k)) == 0)
            r = (int)i;
    json_decref(k);
    return r;
}

/* Fills m with the members of the object p (valid JSON), returns how many. */
static size_t walk(const char *p, size_t len, member_t *m)
{
    size_t i = 0, n = 0;

    while (i < len && is_ws(p[i]))
        i++;
    if (i == len || p[i] != '{')
        abort();
    for (i++;;) {
        while (is_ws(p[i]))
            i++;
        if (p[i] == '}')
            return n;
        if (p[i] == ',')
            for (i++; is_ws(p[i]); i++)
                ;
        if (p[i] != '"' || n == MAX_MEMBERS)
            abort();
        m[n].key_off = i;
        i = skip_string(p, len, i);
        m[n].key_len = i - m[n].key_off;
        while (is_ws(p[i]))
            i++;
        if (p[i++] != ':')
            abort();
        while (is_ws(p[i]))
            i++;
        m[n].val_off = i;
        i = skip_value(p, len, i);
        m[n].val_len = i - m[n].val_off;
        m[n].owned = owned_index(p + m[n].key_off, m[n].key_len);
        n++;
        while (is_ws(p[i]))
            i++;
    }
}

static int same_member(const char *a, const member_t *x, const char *b, const member_t *y)
{
    return x->key_len == y->key_len && x->val_len == y->val_len &&
           memcmp(a + x->key_off, b + y->key_off, x->key_len) == 0 &&
           memcmp(a + x->val_off, b + y->val_off, x->val_len) == 0;
}

/* Property 3, for input body and output o. */
static void check_members(const char *body, size_t len, const char *o, size_t o_len)
{
    member_t *in = malloc(MAX_MEMBERS * sizeof(*in)), *out = malloc(MAX_MEMBERS * sizeof(*out));
    size_t n_in = walk(body, len, in), n_out = walk(o, o_len, out), i, j = 0, others = 0;
    size_t first_in[N_OWNED], at_out[N_OWNED]; /* non-owned members before it, or -1 */
    size_t seen[N_OWNED] = {0};

    memset(first_in, 0xff, sizeof(first_in));
    memset(at_out, 0xff, sizeof(at_out));
    for (i = 0; i < n_in; i++) {
        if (in[i].owned < 0)
            others++;
        else if (first_in[in[i].owned] == (size_t)-1)
            first_in[in[i].owned] = others;
    }
    others = 0;
    for (i = 0; i < n_out; i++) {
        if (out[i].owned >= 0) {
            if (seen[out[i].owned]++ > 0)
                abort(); /* an owned member twice */
            at_out[out[i].owned] = others;
            continue;
        }
        /* the next non-owned member of the input, byte for byte */
        while (j < n_in && in[j].owned >= 0)
            j++;
        if (j == n_in || !same_member(body, &in[j], o, &out[i]))
            abort();
        j++;
        others++;
    }
    while (j < n_in && in[j].owned >= 0)
        j++;
    if (j != n_in)
        abort(); /* a non-owned member dropped */
    if (seen[0] || seen[1])
        abort(); /* return_token_ids, stop_token_ids forwarded */
    for (i = 0; i < N_OWNED; i++)
        if (seen[i] && at_out[i] != (first_in[i] != (size_t)-1 ? first_in[i] : others))
            abort(); /* in place at the first occurrence, or appended after the rest */
    free(in);
    free(out);
}

/* ---- one body ---- */

static void check_body(json_t *root, const char *body, size_t len, gw_tok_req_t *tr)
{
    json_t *before = json_deep_copy(root), *got, *want;
    gw_errbuf_t err;
    gw_buf_t o, o2;
    gw_err_t rc;
    int bad_id = 0;
    char *tree;
    size_t i;

    memset(&err, 0, sizeof(err));
    for (i = 0; i < tr->n_stop_ids; i++)
        bad_id |= tr->stop_ids[i] >= (int64_t)N_PIECES;
    gw_buf_init(&o, MAX_BODY * 2 + 65536);
    rc = gw_tok_req_body(root, body, len, tr, vocab, &o, &err);
    if (!json_equal(root, before))
        abort();
    json_decref(before);
    if (bad_id) {
        if (rc != GW_EPARAM || strcmp(err.param, "stop_token_ids") != 0 || err.msg[0] == '\0')
            abort();
        gw_buf_free(&o);
        return;
    }
    if (rc != GW_OK)
        abort();

    got = json_loadb(o.ptr, o.len, 0, NULL);
    tree = gw_test_tok_tree_body(root, tr, vocab);
    want = json_loads(tree, 0, NULL);
    if (!json_is_object(got) || want == NULL || !json_equal(got, want))
        abort();
    json_decref(got);
    json_decref(want);
    free(tree);

    check_members(body, len, o.ptr, o.len);

    gw_buf_init(&o2, o.len - 1);
    if (gw_tok_req_body(root, body, len, tr, vocab, &o2, &err) != GW_ETOOBIG)
        abort();
    gw_buf_free(&o2);
    gw_buf_init(&o2, o.len);
    if (gw_tok_req_body(root, body, len, tr, vocab, &o2, &err) != GW_OK || o2.len != o.len ||
        memcmp(o2.ptr, o.ptr, o.len) != 0)
        abort();
    gw_buf_free(&o2);
    gw_buf_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_oai_kind_t kind;
    gw_oai_fast_t fast;
    gw_errbuf_t err;
    gw_tok_req_t tr;
    json_t *root = NULL;
    size_t len;
    char *body;
    int f, t;

    if (size < 1)
        return 0;
    kind = (data[0] & 1) ? GW_OAI_COMPLETIONS : GW_OAI_CHAT;
    len = size - 1;
    /* an exact-size copy, so that ASan sees any read past len */
    body = malloc(len ? len : 1);
    if (len)
        memcpy(body, data + 1, len);
    memset(&err, 0, sizeof(err));

    if (!gw_json_depth_ok(body, len, MAX_JSON_DEPTH))
        goto out;
    f = gw_oai_check(body, len, kind, MAX_JSON_DEPTH, &fast);
    if (gw_oai_parse(body, len, kind, &root, &err) != GW_OK) {
        if (f)
            abort();
        goto out;
    }
    t = gw_tok_req_detect(root, kind == GW_OAI_CHAT, MAX_STOP_IDS, &tr, &err);
    if (f) {
        /* the gateway takes the fast path: it must not hide a token-ID request */
        if (t != 0)
            abort();
        goto out;
    }
    if (t < 0 && (err.msg[0] == '\0' || tr.stop_ids != NULL))
        abort();
    if (t == 1) {
        check_body(root, body, len, &tr);
        gw_tok_req_free(&tr);
    }
out:
    json_decref(root);
    free(body);
    return 0;
}
