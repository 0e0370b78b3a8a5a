/*
 * check_tokids.c - unit tests for the token-ID logic (openai/tokids.c), without a backend.
 *
 * Request side: gw_tok_req_detect (when the path is needed, every validation error with
 * its message and param, the flags it reads) and gw_tok_req_body (stop strings merged:
 * the client's first, no duplicates, no "", the stop tokens' pieces added; logprobs,
 * top_logprobs, timings_per_token, stream_options, return_tokens and verbose set as
 * documented; the gateway-only fields removed; an out-of-range stop ID refused). The
 * upstream body is spliced from the client's bytes: it is compared byte for byte (floats,
 * escapes, whitespace, key order, huge integers, repeated and escaped owned keys, owned
 * members first/middle/last/only, stream_options in every shape) and must parse to the
 * same value as the tree rewrite the gateway used before (tests/support/tok_reference.c).
 *
 * Response side: hand-written llama-server chunks and bodies (the shapes of the samples
 * in reference/llama-server-samples and of tests/fake_llama with timings_per_token) are
 * fed to a processor built over a small vocabulary, and the output is compared byte for
 * byte: these are splices, so everything the gateway does not own must come out exactly
 * as it went in. Streams: per-chunk token_ids, prompt_token_ids once, logprobs, timings,
 * usage chunk and __verbose handled as the client asked; every gap kind of llama-server
 * (held-back text, multi-byte byte tokens, text-less tokens, end of generation, the
 * token completing a stop string); a stop at a listed ID, and the inferred control-token
 * stop. Bodies: __verbose.tokens, the post-hoc cut at a listed stop ID, vLLM's inclusion
 * of a non-special stop token's text, and the old-build path without __verbose.
 */
#include <check.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jspan.h"
#include "core/vocab.h"
#include "openai/tokids.h"
#include "tok_reference.h"
#include "testutil.h"

/* ---------------------------------------------------------------------------------
 * The vocabulary (ids as in the comments) and string helpers
 * ------------------------------------------------------------------------------- */

static const char *const PIECES[] = {
    "<unk>", "<s>", "</s>", "<|end|>", "<|placeholder1|>", /* 0-4 */
    "\xF0", "\x9F", "\x98", "\x80",                       /* 5-8: the bytes of U+1F600 */
    " faces", "\xE3\x83\xA0", "merge", "mer", "ge",       /* 9-13 */
    " view", " COM", "azz", " peak", "a", "b", "ab",      /* 14-20 */
    "\n", "x\"y", "",                                     /* 21-23 */
};
#define N_PIECES (sizeof(PIECES) / sizeof(PIECES[0]))
#define EMOJI "\xF0\x9F\x98\x80"

static gw_vocab_t *vocab;

/* Strings made by the helpers below, processors and parsed documents live until the end
 * of the test: teardown frees them, so a failed check (which leaves the test function at
 * once) leaks nothing under CK_FORK=no either. */
static char *arena[4096];
static size_t n_arena;
static gw_tok_resp_t *procs[8];
static size_t n_procs;
static json_t *docs[8];
static size_t n_docs;

static void setup(void)
{
    size_t lens[N_PIECES], i;

    for (i = 0; i < N_PIECES; i++)
        lens[i] = strlen(PIECES[i]);
    vocab = gw_vocab_from_pieces(PIECES, lens, N_PIECES);
}

static void teardown(void)
{
    while (n_arena > 0)
        free(arena[--n_arena]);
    while (n_procs > 0)
        gw_tok_resp_free(procs[--n_procs]);
    while (n_docs > 0)
        json_decref(docs[--n_docs]);
    gw_vocab_unref(vocab);
    vocab = NULL;
}

static const char *keep(char *s)
{
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_lt(n_arena, sizeof(arena) / sizeof(arena[0]));
    arena[n_arena++] = s;
    return s;
}

static gw_tok_resp_t *track(gw_tok_resp_t *r)
{
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_lt(n_procs, sizeof(procs) / sizeof(procs[0]));
    procs[n_procs++] = r;
    return r;
}

static json_t *keep_json(json_t *j)
{
    ck_assert_ptr_nonnull(j);
    ck_assert_uint_lt(n_docs, sizeof(docs) / sizeof(docs[0]));
    docs[n_docs++] = j;
    return j;
}

static const char *S(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *S(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    ck_assert_int_ge(vasprintf(&s, fmt, ap), 0);
    va_end(ap);
    return keep(s);
}

/* A JSON string literal for n bytes. */
static const char *jstr(const char *p, size_t n)
{
    gw_buf_t b;
    size_t len;

    gw_buf_init(&b, 1 << 20);
    ck_assert_int_eq(gw_buf_add_json_str(&b, p, n), GW_OK);
    return keep(gw_buf_take(&b, &len));
}

/* ---------------------------------------------------------------------------------
 * llama-server shapes
 * ------------------------------------------------------------------------------- */

/* A logprobs item of token `id` whose released text is `text` (llama-server puts held
 * text into the next item), with one top entry as the gateway asks for. */
static const char *item_text(int id, const char *text, size_t n, const char *lp)
{
    char bytes[1024];
    size_t i, k = 0;
    const char *t = jstr(text, n);

    bytes[0] = '\0';
    for (i = 0; i < n; i++)
        k += (size_t)snprintf(bytes + k, sizeof(bytes) - k, "%s%u", i ? "," : "",
                              (unsigned char)text[i]);
    return S("{\"id\":%d,\"token\":%s,\"bytes\":[%s],\"logprob\":%s,\"top_logprobs\":"
             "[{\"id\":%d,\"token\":%s,\"bytes\":[%s],\"logprob\":%s}]}",
             id, t, bytes, lp, id, t, bytes, lp);
}

static const char *item(int id)
{
    return item_text(id, PIECES[id], strlen(PIECES[id]), "-0.843");
}

/* The same item as the client sees it after top_logprobs 0. */
static const char *item_top0(int id)
{
    const char *t = jstr(PIECES[id], strlen(PIECES[id]));
    char bytes[256];
    size_t i, k = 0, n = strlen(PIECES[id]);

    bytes[0] = '\0';
    for (i = 0; i < n; i++)
        k += (size_t)snprintf(bytes + k, sizeof(bytes) - k, "%s%u", i ? "," : "",
                              (unsigned char)PIECES[id][i]);
    return S("{\"id\":%d,\"token\":%s,\"bytes\":[%s],\"logprob\":-0.843,\"top_logprobs\":[]}", id,
             t, bytes);
}

#define NUL_ "null"

/* One chat choice. delta is raw JSON; items NULL means no logprobs member. */
static const char *choice_i(int index, const char *finish, const char *delta, const char *items)
{
    return S("{\"finish_reason\":%s,\"index\":%d,\"delta\":%s%s%s%s}", finish, index, delta,
             items ? ",\"logprobs\":{\"content\":[" : "", items ? items : "", items ? "]}" : "");
}

static const char *choice(const char *finish, const char *delta, const char *items)
{
    return choice_i(0, finish, delta, items);
}

static const char *content(const char *text)
{
    return S("{\"content\":%s}", jstr(text, strlen(text)));
}

#define ROLE "{\"role\":\"assistant\",\"content\":null}"

/* A chat chunk; tail goes after "object" (timings, usage, __verbose). */
static const char *chunk_m(const char *model, const char *choices, const char *tail)
{
    return S("{\"choices\":[%s],\"created\":7,\"id\":\"chatcmpl-1\",\"model\":\"%s\","
             "\"system_fingerprint\":\"b1-fp\",\"object\":\"chat.completion.chunk\"%s}",
             choices, model, tail);
}

static const char *chunk(const char *choices, const char *tail)
{
    return chunk_m("models/b.gguf", choices, tail);
}

/* What the client gets for a chunk: the public model name. */
static const char *out(const char *choices, const char *tail)
{
    return chunk_m("pub", choices, tail);
}

static const char *timings(int predicted_n)
{
    return S(",\"timings\":{\"prompt_n\":2,\"prompt_ms\":0.843,\"predicted_n\":%d,"
             "\"predicted_ms\":1.25,\"predicted_per_second\":1600.0}",
             predicted_n);
}

static const char *verbose(const char *stop_type, const char *word)
{
    return S(",\"__verbose\":{\"index\":0,\"content\":\"\",\"tokens\":[],\"stop\":true,"
             "\"stop_type\":\"%s\",\"stopping_word\":%s,\"timings\":{\"predicted_n\":3}}",
             stop_type, jstr(word, strlen(word)));
}

static const char *usage(int c, int p)
{
    return S(",\"usage\":{\"completion_tokens\":%d,\"prompt_tokens\":%d,\"total_tokens\":%d}", c,
             p, c + p);
}

static const char *ev(const char *json)
{
    return S("data: %s\n\n", json);
}

/* ---------------------------------------------------------------------------------
 * Driving the processor
 * ------------------------------------------------------------------------------- */

static json_t *parse(const char *body)
{
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);

    ck_assert_msg(j != NULL, "%s: %s", body, je.text);
    return j;
}

/* Detects from a client body; the path must be needed. */
static void detect(const char *body, int chat, gw_tok_req_t *tr)
{
    json_t *root = parse(body);
    gw_errbuf_t err = {{0}, {0}};

    ck_assert_msg(gw_tok_req_detect(root, chat, 64, tr, &err) == 1, "%s: %s", body, err.msg);
    json_decref(root);
}

static const int64_t PROMPT[] = {1, 9};
#define PROMPT_IDS ",\"prompt_token_ids\":[1,9]"

/* A processor for the client body; the upstream body is built too, as the relay does,
 * so that tr->stops holds what was sent. special: the listed IDs classified as control
 * tokens (what server.c does), terminated by -1. */
static gw_tok_resp_t *resp(const char *body, int chat, const int64_t *special, int with_prompt)
{
    gw_tok_req_t tr;
    json_t *root = parse(body);
    gw_errbuf_t err = {{0}, {0}};
    gw_buf_t up;
    gw_tok_resp_t *r;

    ck_assert_int_eq(gw_tok_req_detect(root, chat, 64, &tr, &err), 1);
    gw_buf_init(&up, 1 << 20);
    ck_assert_int_eq(gw_tok_req_body(root, body, strlen(body), &tr, vocab, &up, &err), GW_OK);
    gw_buf_free(&up);
    if (special) {
        size_t n = 0;

        while (special[n] >= 0)
            n++;
        tr.special_ids = calloc(n + 1, sizeof(int64_t));
        ck_assert_ptr_nonnull(tr.special_ids);
        memcpy(tr.special_ids, special, n * sizeof(int64_t));
        tr.n_special_ids = n;
    }
    r = track(gw_tok_resp_new(&tr, vocab, with_prompt ? PROMPT : NULL, with_prompt ? 2 : 0,
                              "pub", 3));
    gw_tok_req_free(&tr); /* the processor copied what it keeps */
    json_decref(root);
    return r;
}

#define CHAT_BODY(x) "{\"model\":\"pub\",\"messages\":[],\"stream\":true" x "}"
#define IDS ",\"return_token_ids\":true"

/* Feeds one event and returns what came out; rc must be want_rc. */
static const char *feed(gw_tok_resp_t *r, const char *data, int want_rc)
{
    gw_buf_t o;
    size_t len;
    char *s;
    int rc;

    gw_buf_init(&o, 1 << 20);
    rc = gw_tok_resp_event(r, data, strlen(data), &o);
    ck_assert_msg(rc == want_rc, "rc %d, want %d for %s", rc, want_rc, data);
    s = gw_buf_take(&o, &len);
    return s ? keep(s) : "";
}

#define ck_bytes_eq(got, want)                                                              \
    ck_assert_msg(strcmp((got), (want)) == 0, "\n  got:  %s\n  want: %s", (got), (want))

/* Feeds data, expects `want` out and GW_TOK_CONTINUE. */
static void step(gw_tok_resp_t *r, const char *data, const char *want)
{
    const char *got = feed(r, data, GW_TOK_CONTINUE);

    ck_bytes_eq(got, want);
}

/* ---------------------------------------------------------------------------------
 * Request: detect
 * ------------------------------------------------------------------------------- */

START_TEST(test_detect_not_needed)
{
    static const char *const bodies[] = {
        "{\"model\":\"m\"}",
        "{\"model\":\"m\",\"return_token_ids\":false}",
        "{\"model\":\"m\",\"return_token_ids\":null}",
        "{\"model\":\"m\",\"stop_token_ids\":[]}",
        "{\"model\":\"m\",\"stop_token_ids\":null,\"return_token_ids\":false}",
        NULL,
    };
    size_t i;

    for (i = 0; bodies[i]; i++) {
        json_t *root = parse(bodies[i]);
        gw_tok_req_t tr;
        gw_errbuf_t err = {{0}, {0}};

        memset(&tr, 0x55, sizeof(tr));
        ck_assert_msg(gw_tok_req_detect(root, 1, 64, &tr, &err) == 0, "%s", bodies[i]);
        ck_assert_ptr_null(tr.stop_ids);
        ck_assert_ptr_null(tr.stops);
        ck_assert_int_eq(tr.want_ids, 0);
        json_decref(root);
    }
}
END_TEST

typedef struct detect_bad {
    const char *body;
    const char *param;
    const char *msg;
} detect_bad_t;

static const detect_bad_t detect_bad[] = {
    {"{\"return_token_ids\":\"yes\"}", "return_token_ids", "'return_token_ids' must be a boolean"},
    {"{\"return_token_ids\":1}", "return_token_ids", "'return_token_ids' must be a boolean"},
    {"{\"stop_token_ids\":\"x\"}", "stop_token_ids",
     "'stop_token_ids' must be an array of token IDs (integers)"},
    {"{\"stop_token_ids\":389}", "stop_token_ids",
     "'stop_token_ids' must be an array of token IDs (integers)"},
    {"{\"stop_token_ids\":{}}", "stop_token_ids",
     "'stop_token_ids' must be an array of token IDs (integers)"},
    {"{\"stop_token_ids\":[1,\"2\"]}", "stop_token_ids",
     "'stop_token_ids[1]' must be a non-negative integer token ID"},
    {"{\"stop_token_ids\":[-1]}", "stop_token_ids",
     "'stop_token_ids[0]' must be a non-negative integer token ID"},
    {"{\"stop_token_ids\":[true]}", "stop_token_ids",
     "'stop_token_ids[0]' must be a non-negative integer token ID"},
    {"{\"stop_token_ids\":[1,2,1.5]}", "stop_token_ids",
     "'stop_token_ids[2]' must be a non-negative integer token ID"},
    {"{\"stop_token_ids\":[null]}", "stop_token_ids",
     "'stop_token_ids[0]' must be a non-negative integer token ID"},
    /* too many entries: the limit is the caller's (3 here) */
    {"{\"stop_token_ids\":[1,2,3,4]}", "stop_token_ids",
     "'stop_token_ids' has 4 entries; at most 3 are allowed"},
    /* the first error wins: return_token_ids is checked first */
    {"{\"return_token_ids\":0,\"stop_token_ids\":\"x\"}", "return_token_ids",
     "'return_token_ids' must be a boolean"},
};
#define N_DETECT_BAD (sizeof(detect_bad) / sizeof(detect_bad[0]))

START_TEST(test_detect_errors)
{
    const detect_bad_t *c = &detect_bad[_i];
    json_t *root = parse(c->body);
    gw_tok_req_t tr;
    gw_errbuf_t err = {{0}, {0}};

    ck_assert_int_eq(gw_tok_req_detect(root, _i % 2, 3, &tr, &err), -1);
    ck_assert_str_eq(err.msg, c->msg);
    ck_assert_str_eq(err.param, c->param);
    ck_assert_ptr_null(tr.stop_ids);
    json_decref(root);
}
END_TEST

START_TEST(test_detect_limit_edge)
{
    json_t *root = parse("{\"stop_token_ids\":[1,2,3]}");
    gw_tok_req_t tr;
    gw_errbuf_t err = {{0}, {0}};

    ck_assert_int_eq(gw_tok_req_detect(root, 1, 3, &tr, &err), 1);
    ck_assert_uint_eq(tr.n_stop_ids, 3);
    gw_tok_req_free(&tr);
    json_decref(root);
}
END_TEST

START_TEST(test_detect_flags_chat)
{
    gw_tok_req_t tr;

    detect("{\"stream\":true,\"return_token_ids\":true,\"stop_token_ids\":[11,4,11,0,4],"
           "\"logprobs\":true,\"top_logprobs\":0,\"tools\":[{\"type\":\"function\"}],"
           "\"stream_options\":{\"include_usage\":true},\"timings_per_token\":true,"
           "\"verbose\":true,\"n\":3}",
           1, &tr);
    ck_assert_int_eq(tr.chat, 1);
    ck_assert_int_eq(tr.stream, 1);
    ck_assert_int_eq(tr.want_ids, 1);
    ck_assert_uint_eq(tr.n_stop_ids, 3); /* deduplicated, in the client's order */
    ck_assert_int_eq(tr.stop_ids[0], 11);
    ck_assert_int_eq(tr.stop_ids[1], 4);
    ck_assert_int_eq(tr.stop_ids[2], 0);
    ck_assert_int_eq(tr.client_logprobs, 1);
    ck_assert_int_eq(tr.client_top_zero, 1);
    ck_assert_int_eq(tr.tools_stream, 1);
    ck_assert_int_eq(tr.include_usage, 1);
    ck_assert_int_eq(tr.timings_per_token, 1);
    ck_assert_int_eq(tr.verbose, 1);
    ck_assert_int_eq(tr.n_choices, 3);
    ck_assert_ptr_null(tr.stops);
    gw_tok_req_free(&tr);

    /* defaults; stop IDs without return_token_ids */
    detect("{\"stop_token_ids\":[5]}", 1, &tr);
    ck_assert_int_eq(tr.stream, 0);
    ck_assert_int_eq(tr.want_ids, 0);
    ck_assert_uint_eq(tr.n_stop_ids, 1);
    ck_assert_int_eq(tr.client_logprobs, 0);
    ck_assert_int_eq(tr.client_top_zero, 0);
    ck_assert_int_eq(tr.tools_stream, 0);
    ck_assert_int_eq(tr.include_usage, 0);
    ck_assert_int_eq(tr.timings_per_token, 0);
    ck_assert_int_eq(tr.verbose, 0);
    ck_assert_int_eq(tr.n_choices, 1);
    gw_tok_req_free(&tr);

    /* top_logprobs 0 without logprobs is not "top zero"; tools without a stream are fine;
     * an empty tools array is no tools */
    detect("{\"return_token_ids\":true,\"top_logprobs\":0,\"tools\":[{}],\"n\":1}", 1, &tr);
    ck_assert_int_eq(tr.client_top_zero, 0);
    ck_assert_int_eq(tr.tools_stream, 0);
    gw_tok_req_free(&tr);
    detect("{\"return_token_ids\":true,\"stream\":true,\"tools\":[],\"logprobs\":true,"
           "\"top_logprobs\":2,\"n\":0}",
           1, &tr);
    ck_assert_int_eq(tr.tools_stream, 0);
    ck_assert_int_eq(tr.client_logprobs, 1);
    ck_assert_int_eq(tr.client_top_zero, 0);
    ck_assert_int_eq(tr.n_choices, 1);
    gw_tok_req_free(&tr);
}
END_TEST

START_TEST(test_detect_flags_completions)
{
    gw_tok_req_t tr;

    detect("{\"return_token_ids\":true,\"logprobs\":2}", 0, &tr);
    ck_assert_int_eq(tr.chat, 0);
    ck_assert_int_eq(tr.client_logprobs, 1);
    gw_tok_req_free(&tr);
    detect("{\"return_token_ids\":true,\"logprobs\":0}", 0, &tr);
    ck_assert_int_eq(tr.client_logprobs, 0);
    gw_tok_req_free(&tr);
    detect("{\"return_token_ids\":true,\"logprobs\":true}", 0, &tr);
    ck_assert_int_eq(tr.client_logprobs, 1);
    gw_tok_req_free(&tr);
    detect("{\"return_token_ids\":true,\"logprobs\":true,\"top_logprobs\":0,\"stream\":true,"
           "\"tools\":[{}]}",
           0, &tr);
    ck_assert_int_eq(tr.client_top_zero, 0); /* chat only */
    ck_assert_int_eq(tr.tools_stream, 0);
    gw_tok_req_free(&tr);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Request: body
 * ------------------------------------------------------------------------------- */


/* got is valid JSON with the same value as want (a JSON text). */
static void same_value(const char *got, size_t got_len, const char *want)
{
    json_error_t je;
    json_t *g = json_loadb(got, got_len, 0, &je), *w;

    ck_assert_msg(g != NULL, "not JSON (%s): %.*s", je.text, (int)got_len, got);
    w = json_loads(want, 0, &je);
    ck_assert_msg(w != NULL, "%s", want);
    ck_assert_msg(json_equal(g, w), "\n  spliced: %.*s\n  tree:    %s", (int)got_len, got, want);
    json_decref(g);
    json_decref(w);
}

/* Builds the upstream body for a client body; returns it (arena) and leaves tr for the
 * caller to inspect and free. Every body is also checked against the tree rewrite. */
static const char *body_for(const char *client, int chat, gw_tok_req_t *tr)
{
    json_t *root = parse(client);
    gw_errbuf_t err = {{0}, {0}};
    gw_buf_t o;
    size_t len;
    char *before = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER), *after;
    const char *got, *tree;

    ck_assert_int_eq(gw_tok_req_detect(root, chat, 64, tr, &err), 1);
    gw_buf_init(&o, 1 << 20);
    ck_assert_msg(gw_tok_req_body(root, client, strlen(client), tr, vocab, &o, &err) == GW_OK,
                  "%s", err.msg);
    /* the client's parsed body is left as it was */
    after = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    ck_assert_str_eq(after, before);
    free(before);
    free(after);
    got = keep(gw_buf_take(&o, &len));
    tree = keep(gw_test_tok_tree_body(root, tr, vocab));
    same_value(got, len, tree);
    json_decref(root);
    return got;
}

/* The exact upstream body. The client's bytes are spliced, not re-serialized: only the
 * members the gateway owns change, everything else keeps its bytes (floats such as 0.7,
 * escapes, whitespace) and its place. */
static void body_is(const char *client, int chat, const char *want, const char *want_stops)
{
    gw_tok_req_t tr;
    const char *got = body_for(client, chat, &tr);

    ck_bytes_eq(got, want);
    if (want_stops) {
        char *s = json_dumps(tr.stops, JSON_COMPACT | JSON_ENCODE_ANY);

        ck_assert_ptr_nonnull(s);
        ck_assert_str_eq(s, want_stops);
        free(s);
    } else {
        ck_assert_ptr_null(tr.stops);
    }
    gw_tok_req_free(&tr);
}

START_TEST(test_body_chat_stream)
{
    body_is("{\"model\":\"pub\",\"messages\":[],\"stream\":true,\"stop\":[\"zzz\",\"\"],"
            "\"stop_token_ids\":[11,11],\"return_token_ids\":true,\"temperature\":0.5}",
            1,
            "{\"model\":\"pub\",\"messages\":[],\"stream\":true,\"stop\":[\"zzz\",\"merge\"],"
            "\"temperature\":0.5,\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,"
            "\"timings_per_token\":true,\"stream_options\":{\"include_usage\":true}}",
            "[\"zzz\",\"merge\"]");
}
END_TEST

START_TEST(test_body_chat_nonstream)
{
    body_is("{\"model\":\"pub\",\"messages\":[],\"return_token_ids\":true}", 1,
            "{\"model\":\"pub\",\"messages\":[],\"logprobs\":true,\"top_logprobs\":1,"
            "\"verbose\":true,\"return_tokens\":true}",
            NULL);
}
END_TEST

START_TEST(test_body_stop_merge)
{
    /* a string stop; a stop token whose piece the client already listed; one twice */
    body_is("{\"stop\":\"merge\",\"stop_token_ids\":[11,14,11],\"return_token_ids\":true}", 1,
            "{\"stop\":[\"merge\",\" view\"],\"logprobs\":true,\"top_logprobs\":1,"
            "\"verbose\":true,\"return_tokens\":true}",
            "[\"merge\",\" view\"]");
    /* "" dropped from the client's list; a piece that needs escaping */
    body_is("{\"stop\":[\"\",\"a\"],\"stop_token_ids\":[22]}", 1,
            "{\"stop\":[\"a\",\"x\\\"y\"],\"logprobs\":true,\"top_logprobs\":1,"
            "\"verbose\":true,\"return_tokens\":true}",
            "[\"a\",\"x\\\"y\"]");
    /* pieces that cannot be stop strings: "" (23) and a lone UTF-8 lead byte (5) */
    body_is("{\"stop_token_ids\":[23,5,9]}", 1,
            "{\"stop\":[\" faces\"],\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,"
            "\"return_tokens\":true}",
            "[\" faces\"]");
    /* nothing left: stop removed from the upstream body */
    body_is("{\"stop\":\"\",\"stop_token_ids\":[23]}", 1,
            "{\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,\"return_tokens\":true}",
            "[]");
    body_is("{\"stop\":[\"\"],\"return_token_ids\":true}", 1,
            "{\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,\"return_tokens\":true}",
            "[]");
    /* the client's stop alone, kept; null stop becomes none */
    body_is("{\"stop\":[\"q\",\"r\"],\"return_token_ids\":true}", 1,
            "{\"stop\":[\"q\",\"r\"],\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,"
            "\"return_tokens\":true}",
            "[\"q\",\"r\"]");
    body_is("{\"stop\":null,\"return_token_ids\":true}", 1,
            "{\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,\"return_tokens\":true}",
            "[]");
    /* a control token's piece is sent as text (harmless: llama-server renders it "") */
    body_is("{\"stop_token_ids\":[3]}", 1,
            "{\"stop\":[\"<|end|>\"],\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,"
            "\"return_tokens\":true}",
            "[\"<|end|>\"]");
}
END_TEST

START_TEST(test_body_logprobs)
{
    /* the client's own logprobs and count are kept */
    body_is("{\"logprobs\":true,\"top_logprobs\":3,\"return_token_ids\":true}", 1,
            "{\"logprobs\":true,\"top_logprobs\":3,\"verbose\":true,\"return_tokens\":true}",
            NULL);
    /* top_logprobs 0 would turn logprobs off in llama-server: 1 */
    body_is("{\"logprobs\":true,\"top_logprobs\":0,\"return_token_ids\":true}", 1,
            "{\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,\"return_tokens\":true}",
            NULL);
    body_is("{\"logprobs\":false,\"top_logprobs\":5,\"return_token_ids\":true}", 1,
            "{\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,\"return_tokens\":true}",
            NULL);
    /* chat stream with tools: llama-server refuses logprobs there, none are asked */
    body_is("{\"stream\":true,\"tools\":[{\"type\":\"function\"}],\"return_token_ids\":true}", 1,
            "{\"stream\":true,\"tools\":[{\"type\":\"function\"}],\"verbose\":true,"
            "\"timings_per_token\":true,\"stream_options\":{\"include_usage\":true}}",
            NULL);
    /* completions: an integer count, the client's kept */
    body_is("{\"prompt\":\"p\",\"return_token_ids\":true}", 0,
            "{\"prompt\":\"p\",\"logprobs\":1,\"verbose\":true,\"return_tokens\":true}", NULL);
    body_is("{\"prompt\":\"p\",\"logprobs\":3,\"return_token_ids\":true}", 0,
            "{\"prompt\":\"p\",\"logprobs\":3,\"verbose\":true,\"return_tokens\":true}", NULL);
    body_is("{\"prompt\":\"p\",\"logprobs\":0,\"return_token_ids\":true}", 0,
            "{\"prompt\":\"p\",\"logprobs\":1,\"verbose\":true,\"return_tokens\":true}", NULL);
}
END_TEST

START_TEST(test_body_stream_options)
{
    /* the client's stream_options object is kept and include_usage forced on */
    body_is("{\"stream\":true,\"stream_options\":{\"x\":1,\"include_usage\":false},"
            "\"return_token_ids\":true,\"timings_per_token\":false}",
            1,
            "{\"stream\":true,\"stream_options\":{\"x\":1,\"include_usage\":true},"
            "\"timings_per_token\":true,\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true}",
            NULL);
    body_is("{\"stream\":true,\"stream_options\":null,\"return_token_ids\":true}", 1,
            "{\"stream\":true,\"stream_options\":{\"include_usage\":true},\"logprobs\":true,"
            "\"top_logprobs\":1,\"verbose\":true,\"timings_per_token\":true}",
            NULL);
    /* completions streams carry usage anyway: no stream_options */
    body_is("{\"prompt\":\"p\",\"stream\":true,\"return_token_ids\":true}", 0,
            "{\"prompt\":\"p\",\"stream\":true,\"logprobs\":1,\"verbose\":true,"
            "\"timings_per_token\":true}",
            NULL);
}
END_TEST

/* Everything the gateway does not own keeps its bytes: floats jansson would print as
 * 0.69999999999999996 and 1.0000000000000001e-05, escapes it would decode (\u00e9, \/),
 * whitespace and newlines, the client's key order, an extension field. */
START_TEST(test_body_bytes_kept)
{
    body_is("{ \"model\" : \"pub\",\n  \"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 "
            "\\/ \\\"q\\\"\"}],\n  \"temperature\":0.7, \"top_p\":0.95,\"min_p\":1e-5,\n"
            "  \"stream\":true,\n  \"return_token_ids\":true,\n"
            "  \"x_ext\": { \"a\" : [1, 2.50, -0.0, 1E+2] }\n}\n",
            1,
            "{ \"model\" : \"pub\",\n  \"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 "
            "\\/ \\\"q\\\"\"}],\n  \"temperature\":0.7, \"top_p\":0.95,\"min_p\":1e-5,\n"
            "  \"stream\":true,\n"
            "  \"x_ext\": { \"a\" : [1, 2.50, -0.0, 1E+2] },\"logprobs\":true,\"top_logprobs\":1,"
            "\"verbose\":true,\"timings_per_token\":true,"
            "\"stream_options\":{\"include_usage\":true}\n}\n",
            NULL);
    /* completions, non-stream: the client's logprobs count and a float seed-like value */
    body_is("{\"prompt\":\"p\\u00e9\",\"logprobs\":3,\"temperature\":0.7,\"seed\":12345678901,"
            "\"return_token_ids\":true,\"presence_penalty\":-1.5e-3}",
            0,
            "{\"prompt\":\"p\\u00e9\",\"logprobs\":3,\"temperature\":0.7,\"seed\":12345678901,"
            "\"presence_penalty\":-1.5e-3,\"verbose\":true,\"return_tokens\":true}",
            NULL);
}
END_TEST

/* An owned member as the first, a middle, the last and the only member, with and
 * without whitespace around it: the commas stay right. */
START_TEST(test_body_owned_positions)
{
    /* first */
    body_is("{\"return_token_ids\":true,\"model\":\"pub\",\"temperature\":0.7}", 1,
            "{\"model\":\"pub\",\"temperature\":0.7,\"logprobs\":true,\"top_logprobs\":1,"
            "\"verbose\":true,\"return_tokens\":true}",
            NULL);
    body_is("{ \"return_token_ids\" : true ,\n \"stop_token_ids\":[11],\n \"model\":\"pub\" }", 1,
            "{ \"model\":\"pub\",\"stop\":[\"merge\"],\"logprobs\":true,\"top_logprobs\":1,"
            "\"verbose\":true,\"return_tokens\":true }",
            "[\"merge\"]");
    /* middle, replaced in place */
    body_is("{\"model\":\"pub\",\n\t\"verbose\" :\tfalse,\n\t\"temperature\":0.7,"
            "\"return_token_ids\":true}",
            1,
            "{\"model\":\"pub\",\n\t\"verbose\" :\ttrue,\n\t\"temperature\":0.7,"
            "\"logprobs\":true,\"top_logprobs\":1,\"return_tokens\":true}",
            NULL);
    /* last, with whitespace before the brace */
    body_is("{\"model\":\"pub\" , \"temperature\":0.7 ,\r\n \"return_token_ids\":true \r\n}", 1,
            "{\"model\":\"pub\" , \"temperature\":0.7,\"logprobs\":true,\"top_logprobs\":1,"
            "\"verbose\":true,\"return_tokens\":true \r\n}",
            NULL);
    /* the only member: the new ones go right after the brace */
    body_is("  { \"return_token_ids\": true }  ", 1,
            "  {\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,\"return_tokens\":true  }  ",
            NULL);
    /* every member owned, replaced in place and removed */
    body_is("{\"stop_token_ids\":[11],\"logprobs\":false,\"return_token_ids\":true}", 1,
            "{\"logprobs\":true,\"stop\":[\"merge\"],\"top_logprobs\":1,\"verbose\":true,"
            "\"return_tokens\":true}",
            "[\"merge\"]");
}
END_TEST

/* An owned member given several times reaches the backend once: at its first place,
 * with the value a parser keeps (the last one, as the tree holds it). Others keep every
 * occurrence (jansson and llama-server read the last). */
START_TEST(test_body_duplicate_keys)
{
    body_is("{\"stop\":\"a\",\"model\":\"pub\",\"stop_token_ids\":[11],\"top_logprobs\":2,"
            "\"stop\":[\"b\",\"\"],\"return_token_ids\":true,\"logprobs\":true,"
            "\"top_logprobs\":3,\"temperature\":0.7,\"return_token_ids\":true,"
            "\"x\":1,\"x\":2.50}",
            1,
            "{\"stop\":[\"b\",\"merge\"],\"model\":\"pub\",\"top_logprobs\":3,\"logprobs\":true,"
            "\"temperature\":0.7,\"x\":1,\"x\":2.50,\"verbose\":true,\"return_tokens\":true}",
            "[\"b\",\"merge\"]");
    /* the first two members both removed (jedit's remove_member cannot do that) */
    body_is("{\"return_token_ids\":true,\"return_token_ids\":true,\"model\":\"pub\"}", 1,
            "{\"model\":\"pub\",\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,"
            "\"return_tokens\":true}",
            NULL);
    /* a tools stream leaves logprobs to the client, but once */
    body_is("{\"stream\":true,\"tools\":[{}],\"logprobs\":false,\"return_token_ids\":true,"
            "\"logprobs\":true}",
            1,
            "{\"stream\":true,\"tools\":[{}],\"logprobs\":true,\"verbose\":true,"
            "\"timings_per_token\":true,\"stream_options\":{\"include_usage\":true}}",
            NULL);
}
END_TEST

/* Keys are matched as a parser reads them: an escaped owned key is still owned. */
START_TEST(test_body_escaped_keys)
{
    body_is("{\"model\":\"pub\",\"\\u0073top_token_ids\":[11],\"st\\u006fp\":\"zz\","
            "\"v\\u0065rbose\":0}",
            1,
            "{\"model\":\"pub\",\"st\\u006fp\":[\"zz\",\"merge\"],\"v\\u0065rbose\":true,"
            "\"logprobs\":true,\"top_logprobs\":1,\"return_tokens\":true}",
            "[\"zz\",\"merge\"]");
}
END_TEST

/* stream_options in chat streams: the client's object keeps its bytes, include_usage set
 * (in place, appended, once); absent or not an object: {"include_usage":true}. */
START_TEST(test_body_stream_options_bytes)
{
    body_is("{\"stream\":true,\"stream_options\":{ \"x\" : 1.10 , \"include_usage\" : false },"
            "\"return_token_ids\":true}",
            1,
            "{\"stream\":true,\"stream_options\":{ \"x\" : 1.10 , \"include_usage\" : true },"
            "\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,\"timings_per_token\":true}",
            NULL);
    body_is("{\"stream\":true,\"stream_options\":{\"x\":1e-5},\"return_token_ids\":true}", 1,
            "{\"stream\":true,\"stream_options\":{\"x\":1e-5,\"include_usage\":true},"
            "\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,\"timings_per_token\":true}",
            NULL);
    body_is("{\"stream\":true,\"stream_options\":{ },\"return_token_ids\":true}", 1,
            "{\"stream\":true,\"stream_options\":{\"include_usage\":true },"
            "\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,\"timings_per_token\":true}",
            NULL);
    body_is("{\"stream\":true,\"stream_options\":false,\"return_token_ids\":true}", 1,
            "{\"stream\":true,\"stream_options\":{\"include_usage\":true},"
            "\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,\"timings_per_token\":true}",
            NULL);
    /* repeated, with a repeated include_usage inside the last one */
    body_is("{\"stream_options\":{\"a\":1},\"stream\":true,\"stream_options\":{\"b\":2.0,"
            "\"include_usage\":false,\"include_usage\":false},\"return_token_ids\":true}",
            1,
            "{\"stream_options\":{\"b\":2.0,\"include_usage\":true},\"stream\":true,"
            "\"logprobs\":true,\"top_logprobs\":1,\"verbose\":true,\"timings_per_token\":true}",
            NULL);
    /* non-stream chat and completions streams: the client's, untouched */
    body_is("{\"stream_options\":{ \"include_usage\" : false },\"return_token_ids\":true}", 1,
            "{\"stream_options\":{ \"include_usage\" : false },\"logprobs\":true,"
            "\"top_logprobs\":1,\"verbose\":true,\"return_tokens\":true}",
            NULL);
    body_is("{\"prompt\":\"p\",\"stream\":true,\"stream_options\":{ \"include_usage\" : false },"
            "\"return_token_ids\":true}",
            0,
            "{\"prompt\":\"p\",\"stream\":true,\"stream_options\":{ \"include_usage\" : false },"
            "\"logprobs\":1,\"verbose\":true,\"timings_per_token\":true}",
            NULL);
}
END_TEST

/* An integer past int64 (jansson refuses it, other parsers keep it) goes through as
 * written: root stands for the tree such a parser would give, seed aside. */
START_TEST(test_body_huge_integer)
{
    static const char body[] = "{\"model\":\"pub\",\"seed\":18446744073709551615,"
                               "\"return_token_ids\":true,\"x_big\":1e400}";
    static const char want[] = "{\"model\":\"pub\",\"seed\":18446744073709551615,"
                               "\"x_big\":1e400,\"logprobs\":true,\"top_logprobs\":1,"
                               "\"verbose\":true,\"return_tokens\":true}";
    json_t *root = parse("{\"model\":\"pub\",\"seed\":0,\"return_token_ids\":true,\"x_big\":0}");
    gw_tok_req_t tr;
    gw_errbuf_t err = {{0}, {0}};
    gw_buf_t o;

    ck_assert_int_eq(gw_tok_req_detect(root, 1, 64, &tr, &err), 1);
    gw_buf_init(&o, 1 << 20);
    ck_assert_int_eq(gw_tok_req_body(root, body, strlen(body), &tr, vocab, &o, &err), GW_OK);
    ck_assert_msg(o.len == strlen(want) && memcmp(o.ptr, want, o.len) == 0, "got %s", o.ptr);
    gw_buf_free(&o);
    gw_tok_req_free(&tr);
    json_decref(root);
}
END_TEST

/* The ceiling holds the whole upstream body: one byte short fails, exact fits. */
START_TEST(test_body_ceiling_exact)
{
    static const char body[] = "{\"model\":\"pub\",\"temperature\":0.7,\"return_token_ids\":true}";
    static const char want[] = "{\"model\":\"pub\",\"temperature\":0.7,\"logprobs\":true,"
                               "\"top_logprobs\":1,\"verbose\":true,\"return_tokens\":true}";
    json_t *root = parse(body);
    gw_tok_req_t tr;
    gw_errbuf_t err = {{0}, {0}};
    gw_buf_t o;

    ck_assert_int_eq(gw_tok_req_detect(root, 1, 64, &tr, &err), 1);
    gw_buf_init(&o, strlen(want) - 1);
    ck_assert_int_eq(gw_tok_req_body(root, body, strlen(body), &tr, vocab, &o, &err),
                     GW_ETOOBIG);
    ck_assert_str_eq(err.msg, "request body too large after rewriting");
    gw_buf_free(&o);
    gw_buf_init(&o, strlen(want));
    ck_assert_int_eq(gw_tok_req_body(root, body, strlen(body), &tr, vocab, &o, &err), GW_OK);
    ck_assert_str_eq(o.ptr, want);
    gw_buf_free(&o);
    gw_tok_req_free(&tr);
    json_decref(root);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Random bodies against the tree rewrite
 * ------------------------------------------------------------------------------- */

typedef struct frag {
    const char *key;
    const char *vals[6]; /* NULL-terminated */
} frag_t;

static const frag_t FRAGS[] = {
    {"\"model\"", {"\"pub\"", NULL}},
    {"\"temperature\"", {"0.7", "1e-5", NULL}},
    {"\"x_ext\"", {"{ \"a\" : [1, 2.50, \"\\u00e9\\/\"] }", "-0.0", NULL}},
    {"\"stream\"", {"true", "false", NULL}},
    {"\"stop\"", {"\"merge\"", "[\"a\",\"\",\"a\"]", "null", "[]", "\"\"", NULL}},
    {"\"stop_token_ids\"", {"[11]", "[3, 11, 14]", "[]", "[23,5]", "null", NULL}},
    {"\"return_token_ids\"", {"true", "true", "false", "null", NULL}},
    {"\"logprobs\"", {"true", "false", "2", "0", NULL}},
    {"\"top_logprobs\"", {"0", "3", NULL}},
    {"\"verbose\"", {"false", "true", NULL}},
    {"\"timings_per_token\"", {"false", "true", NULL}},
    {"\"stream_options\"",
     {"{\"include_usage\":false, \"k\": 1e-5}", "null", "{}",
      "{ \"include_usage\" : true , \"include_usage\" : false }", NULL}},
    {"\"return_tokens\"", {"false", NULL}},
    {"\"tools\"", {"[{}]", "[]", NULL}},
    {"\"\\u0073top\"", {"[\"q\"]", NULL}},
    {"\"n\"", {"2", NULL}},
};
#define N_FRAGS (sizeof(FRAGS) / sizeof(FRAGS[0]))

static const char *const WS[] = {"", "", "", " ", "\n", "\t ", "\r\n  "};

static uint32_t rnd(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

/* Appends a random object of owned and other members, repeated keys included. */
static void random_body(uint32_t *st, gw_buf_t *b)
{
    size_t n = rnd(st) % 9, i;

    gw_buf_adds(b, WS[rnd(st) % 7]);
    gw_buf_adds(b, "{");
    for (i = 0; i < n; i++) {
        const frag_t *f = &FRAGS[rnd(st) % N_FRAGS];
        size_t nv = 0;

        while (f->vals[nv])
            nv++;
        if (i > 0) {
            gw_buf_adds(b, WS[rnd(st) % 7]);
            gw_buf_adds(b, ",");
        }
        gw_buf_adds(b, WS[rnd(st) % 7]);
        gw_buf_adds(b, f->key);
        gw_buf_adds(b, WS[rnd(st) % 7]);
        gw_buf_adds(b, ":");
        gw_buf_adds(b, WS[rnd(st) % 7]);
        gw_buf_adds(b, f->vals[rnd(st) % nv]);
    }
    if (rnd(st) % 2) { /* mostly a token-ID request */
        gw_buf_adds(b, n > 0 ? ",\"return_token_ids\":true" : "\"return_token_ids\":true");
    }
    gw_buf_adds(b, WS[rnd(st) % 7]);
    gw_buf_adds(b, "}");
    gw_buf_adds(b, WS[rnd(st) % 7]);
}

/* Every body the token-ID path takes: the spliced output parses to the tree rewrite's
 * value, and no owned member appears twice in it. */
START_TEST(test_body_random_vs_tree)
{
    static const char *const owned[] = {"return_token_ids", "stop_token_ids", "stop",
                                        "logprobs", "top_logprobs", "verbose",
                                        "timings_per_token", "stream_options",
                                        "return_tokens", NULL};
    uint32_t st = 20240611u;
    size_t iter, taken = 0;

    for (iter = 0; iter < 3000; iter++) {
        gw_buf_t in, o;
        json_t *root;
        gw_tok_req_t tr;
        gw_errbuf_t err = {{0}, {0}};
        int chat = (int)(rnd(&st) % 2), rc;
        size_t k;
        char *tree;

        gw_buf_init(&in, 1 << 16);
        random_body(&st, &in);
        root = json_loadb(in.ptr, in.len, 0, NULL);
        ck_assert_msg(root != NULL, "generator: %s", in.ptr);
        rc = gw_tok_req_detect(root, chat, 64, &tr, &err);
        if (rc != 1) { /* not the token-ID path, or refused: nothing to build */
            json_decref(root);
            gw_buf_free(&in);
            continue;
        }
        taken++;
        gw_buf_init(&o, 1 << 16);
        ck_assert_msg(gw_tok_req_body(root, in.ptr, in.len, &tr, vocab, &o, &err) == GW_OK,
                      "%s: %s", in.ptr, err.msg);
        tree = gw_test_tok_tree_body(root, &tr, vocab);
        same_value(o.ptr, o.len, tree);
        for (k = 0; owned[k]; k++) {
            size_t it = 0, seen = 0;
            gw_jspan_t m;

            while ((rc = gw_json_object_next(o.ptr, o.len, 0, &it, &m)) == 1)
                seen += (size_t)gw_json_key_eq(o.ptr, o.len, &m, owned[k]);
            ck_assert_int_eq(rc, 0);
            ck_assert_msg(seen <= 1, "%s twice in %s (from %s)", owned[k], o.ptr, in.ptr);
        }
        free(tree);
        gw_buf_free(&o);
        gw_tok_req_free(&tr);
        json_decref(root);
        gw_buf_free(&in);
    }
    ck_assert_uint_gt(taken, 1000);
}
END_TEST

START_TEST(test_body_stop_id_out_of_range)
{
    static const char body[] = "{\"stop_token_ids\":[3,24]}";
    json_t *root = parse(body);
    gw_tok_req_t tr;
    gw_errbuf_t err = {{0}, {0}};
    gw_buf_t o;

    ck_assert_int_eq(gw_tok_req_detect(root, 1, 64, &tr, &err), 1);
    gw_buf_init(&o, 1 << 20);
    ck_assert_int_eq(gw_tok_req_body(root, body, strlen(body), &tr, vocab, &o, &err),
                     GW_EPARAM);
    ck_assert_str_eq(err.param, "stop_token_ids");
    ck_assert_str_eq(err.msg,
                     "'stop_token_ids' contains 24, outside the model's vocabulary [0, 24)");
    ck_assert_uint_eq(o.len, 0);
    gw_buf_free(&o);
    gw_tok_req_free(&tr);
    json_decref(root);
}
END_TEST

START_TEST(test_body_ceiling)
{
    static const char body[] = "{\"return_token_ids\":true}";
    json_t *root = parse(body);
    gw_tok_req_t tr;
    gw_errbuf_t err = {{0}, {0}};
    gw_buf_t o;

    ck_assert_int_eq(gw_tok_req_detect(root, 1, 64, &tr, &err), 1);
    gw_buf_init(&o, 10);
    ck_assert_int_eq(gw_tok_req_body(root, body, strlen(body), &tr, vocab, &o, &err),
                     GW_ETOOBIG);
    ck_assert_str_eq(err.param, "");
    gw_buf_free(&o);
    gw_tok_req_free(&tr);
    json_decref(root);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Stream: what the client asked for
 * ------------------------------------------------------------------------------- */

/* A whole ordinary stream: role, two tokens, finish with __verbose, the usage chunk the
 * gateway asked for, [DONE]. The client asked for token IDs only. */
START_TEST(test_stream_plain)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS), 1, NULL, 1);

    step(r, chunk(choice(NUL_, ROLE, NULL), timings(1)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":" ROLE ",\"token_ids\":[]}"),
                PROMPT_IDS)));
    step(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[9]}",
                  content(" faces")),
                "")));
    step(r, chunk(choice(NUL_, content("\xE3\x83\xA0"), item(10)), timings(2)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[10]}",
                  content("\xE3\x83\xA0")),
                "")));
    step(r, chunk(choice("\"length\"", "{}", NULL), S("%s%s", timings(2), verbose("limit", ""))),
         ev(out("{\"finish_reason\":\"length\",\"index\":0,\"delta\":{},\"stop_reason\":null,"
                "\"token_ids_complete\":true,\"token_ids\":[]}",
                timings(2))));
    step(r, chunk("", S("%s%s", usage(2, 2), timings(2))), "");
    step(r, "[DONE]", "data: [DONE]\n\n");
    step(r, "[DONE]", ""); /* once */
}
END_TEST

/* The finish chunk keeps its timings when no usage chunk follows for the client. */
START_TEST(test_stream_finish_keeps_timings)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS), 1, NULL, 0);

    step(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[9]}",
                  content(" faces")),
                ""))); /* no prompt IDs known: none sent */
    step(r, chunk(choice("\"stop\"", "{}", NULL), timings(1)),
         ev(out("{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{},\"stop_reason\":null,"
                "\"token_ids_complete\":true,\"token_ids\":[]}",
                timings(1))));
}
END_TEST

START_TEST(test_stream_include_usage)
{
    gw_tok_resp_t *r =
        resp(CHAT_BODY(IDS ",\"stream_options\":{\"include_usage\":true}"), 1, NULL, 1);

    feed(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)), GW_TOK_CONTINUE);
    /* the finish chunk loses its timings: llama-server puts them on the usage chunk */
    step(r, chunk(choice("\"stop\"", "{}", NULL), timings(1)),
         ev(out("{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{},\"stop_reason\":null,"
                "\"token_ids_complete\":true,\"token_ids\":[]}",
                "")));
    step(r, chunk("", S("%s%s", usage(1, 2), timings(1))),
         ev(out("", S("%s%s", usage(1, 2), timings(1)))));
    step(r, "[DONE]", "data: [DONE]\n\n");
}
END_TEST

START_TEST(test_stream_timings_per_token)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS ",\"timings_per_token\":true"), 1, NULL, 0);

    step(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[9]}",
                  content(" faces")),
                timings(1))));
    step(r, chunk(choice("\"stop\"", "{}", NULL), timings(1)),
         ev(out("{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{},\"stop_reason\":null,"
                "\"token_ids_complete\":true,\"token_ids\":[]}",
                timings(1))));
    step(r, chunk("", S("%s%s", usage(1, 2), timings(1))), ""); /* no include_usage */
}
END_TEST

/* The client's own logprobs pass byte for byte (floats included). */
START_TEST(test_stream_client_logprobs)
{
    gw_tok_resp_t *r =
        resp(CHAT_BODY(IDS ",\"logprobs\":true,\"top_logprobs\":2"), 1, NULL, 0);
    const char *it = item_text(9, " faces", 6, "-1.5303703546524048");

    step(r, chunk(choice(NUL_, content(" faces"), it), timings(1)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"logprobs\":{\"content\":"
                  "[%s]},\"token_ids\":[9]}",
                  content(" faces"), it),
                "")));
}
END_TEST

START_TEST(test_stream_top_logprobs_zero)
{
    gw_tok_resp_t *r =
        resp(CHAT_BODY(IDS ",\"logprobs\":true,\"top_logprobs\":0"), 1, NULL, 0);

    step(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"logprobs\":{\"content\":"
                  "[%s]},\"token_ids\":[9]}",
                  content(" faces"), item_top0(9)),
                "")));
}
END_TEST

START_TEST(test_stream_verbose_kept_when_asked)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS ",\"verbose\":true"), 1, NULL, 0);
    const char *v = verbose("eos", "");

    feed(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)), GW_TOK_CONTINUE);
    step(r, chunk(choice("\"stop\"", "{}", NULL), S("%s%s", timings(1), v)),
         ev(out("{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{},\"stop_reason\":null,"
                "\"token_ids_complete\":true,\"token_ids\":[]}",
                S("%s%s", timings(1), v))));
}
END_TEST

/* stop_token_ids without return_token_ids: no token_ids, but stop_reason. */
START_TEST(test_stream_without_ids)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(",\"stop_token_ids\":[19]"), 1, NULL, 1);

    step(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s}", content(" faces")), "")));
    step(r, chunk(choice("\"stop\"", "{}", NULL), S("%s%s", timings(2), verbose("eos", ""))),
         ev(out("{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{},\"stop_reason\":null}",
                timings(2))));
}
END_TEST

/* Not a completion chunk (an error event): passed on with the public model name. */
START_TEST(test_stream_error_event)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS), 1, NULL, 1);

    step(r, "{\"error\":{\"code\":500,\"message\":\"boom\",\"type\":\"server_error\"}}",
         "data: {\"error\":{\"code\":500,\"message\":\"boom\",\"type\":\"server_error\"}}\n\n");
    step(r, "{\"error\":{\"code\":500},\"model\":\"x\"}",
         "data: {\"error\":{\"code\":500},\"model\":\"pub\"}\n\n");
    step(r, "not json", "data: not json\n\n");
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Stream: gaps
 * ------------------------------------------------------------------------------- */

#define FIN_OK(stop_reason, ids)                                                            \
    "{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{},\"stop_reason\":" stop_reason     \
    ",\"token_ids_complete\":true,\"token_ids\":" ids "}"

/* Held-back text released with the next token: " peak" came with "azz" before it. */
START_TEST(test_gap_held_back_text)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS ",\"stop\":[\"azz peaX\"]"), 1, NULL, 0);

    feed(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)), GW_TOK_CONTINUE);
    step(r,
         chunk(choice(NUL_, content("azz peak"), item_text(17, "azz peak", 8, "-0.5")),
               timings(3)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[16,17]}",
                  content("azz peak")),
                "")));
    step(r, chunk(choice("\"stop\"", "{}", NULL), timings(3)),
         ev(out(FIN_OK("null", "[]"), timings(3))));
}
END_TEST

/* A character made of byte tokens: its item comes with the last byte. */
START_TEST(test_gap_multibyte)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS), 1, NULL, 0);

    feed(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)), GW_TOK_CONTINUE);
    step(r, chunk(choice(NUL_, content(EMOJI), item_text(8, EMOJI, 4, "-0.5")), timings(5)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[5,6,7,8]}",
                  content(EMOJI)),
                "")));
    step(r, chunk(choice(NUL_, content(" view"), item(14)), timings(6)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[14]}",
                  content(" view")),
                "")));
    step(r, chunk(choice("\"length\"", "{}", NULL), timings(6)),
         ev(out("{\"finish_reason\":\"length\",\"index\":0,\"delta\":{},\"stop_reason\":null,"
                "\"token_ids_complete\":true,\"token_ids\":[]}",
                timings(6))));
}
END_TEST

/* A token with no text (a control token) mid-stream: reported with its position. */
START_TEST(test_gap_textless)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS), 1, NULL, 0);

    feed(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)), GW_TOK_CONTINUE);
    step(r, chunk(choice(NUL_, content("\xE3\x83\xA0"), item(10)), timings(3)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[10]}",
                  content("\xE3\x83\xA0")),
                "")));
    step(r, chunk(choice(NUL_, content(" COM"), item(15)), timings(4)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[15]}",
                  content(" COM")),
                "")));
    step(r, chunk(choice("\"length\"", "{}", NULL), timings(4)),
         ev(out("{\"finish_reason\":\"length\",\"index\":0,\"delta\":{},\"stop_reason\":null,"
                "\"token_ids_complete\":false,\"token_ids_missing\":[{\"position\":1,"
                "\"count\":1,\"reason\":\"token_without_text\"}],\"token_ids\":[]}",
                timings(4))));
}
END_TEST

/* The end-of-generation token gets no item: reported at the finish chunk. */
START_TEST(test_gap_end_of_generation)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS), 1, NULL, 0);

    feed(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)), GW_TOK_CONTINUE);
    feed(r, chunk(choice(NUL_, content("\xE3\x83\xA0"), item(10)), timings(2)), GW_TOK_CONTINUE);
    feed(r, chunk(choice(NUL_, content("merge"), item(11)), timings(3)), GW_TOK_CONTINUE);
    step(r, chunk(choice("\"stop\"", "{}", NULL), S("%s%s", timings(4), verbose("eos", ""))),
         ev(out("{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{},\"stop_reason\":null,"
                "\"token_ids_complete\":false,\"token_ids_missing\":[{\"position\":3,"
                "\"count\":1,\"reason\":\"end_of_generation_token_not_reported\"}],"
                "\"token_ids\":[]}",
                timings(4))));
}
END_TEST

/* Tokens cut by max_tokens-like ends with no reason given. */
START_TEST(test_gap_at_length_finish)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS), 1, NULL, 0);

    feed(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)), GW_TOK_CONTINUE);
    step(r, chunk(choice("\"length\"", "{}", NULL), timings(3)),
         ev(out("{\"finish_reason\":\"length\",\"index\":0,\"delta\":{},\"stop_reason\":null,"
                "\"token_ids_complete\":false,\"token_ids_missing\":[{\"position\":1,"
                "\"count\":2,\"reason\":\"tokens_not_reported\"}],\"token_ids\":[]}",
                timings(3))));
}
END_TEST

/* The token that completes a stop string sends no text and gets no item: the one
 * vocabulary piece that starts with the stop string is it. */
START_TEST(test_gap_stop_string_token)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS ",\"stop\":[\"merge\"]"), 1, NULL, 0);

    feed(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)), GW_TOK_CONTINUE);
    feed(r, chunk(choice(NUL_, content("\xE3\x83\xA0"), item(10)), timings(2)), GW_TOK_CONTINUE);
    step(r, chunk(choice("\"stop\"", "{}", NULL), S("%s%s", timings(3), verbose("word", "merge"))),
         ev(out(FIN_OK("\"merge\"", "[11]"), timings(3))));
}
END_TEST

/* ... and when two pieces start with it, the ID is not guessed. */
START_TEST(test_gap_stop_string_token_ambiguous)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS ",\"stop\":[\"mer\"]"), 1, NULL, 0);

    feed(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)), GW_TOK_CONTINUE);
    step(r, chunk(choice("\"stop\"", "{}", NULL), S("%s%s", timings(2), verbose("word", "mer"))),
         ev(out("{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{},\"stop_reason\":\"mer\","
                "\"token_ids_complete\":false,\"token_ids_missing\":[{\"position\":1,"
                "\"count\":1,\"reason\":\"stop_string_token_ambiguous\"}],\"token_ids\":[]}",
                timings(2))));
}
END_TEST

/* Held text, then the stop string completes inside the next token: llama-server sends
 * the text up to the match ("mer") with the item of the completing token (" view"). */
START_TEST(test_gap_held_then_stop_hits)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS ",\"stop\":[\"ge vi\"]"), 1, NULL, 0);

    feed(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)), GW_TOK_CONTINUE);
    feed(r, chunk(choice(NUL_, content("\xE3\x83\xA0"), item(10)), timings(2)), GW_TOK_CONTINUE);
    step(r, chunk(choice(NUL_, content("mer"), item_text(14, "mer", 3, "-0.5")), timings(4)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[11,14]}",
                  content("mer")),
                "")));
    step(r, chunk(choice("\"stop\"", "{}", NULL), S("%s%s", timings(4), verbose("word", "ge vi"))),
         ev(out(FIN_OK("\"ge vi\"", "[]"), timings(4))));
}
END_TEST

/* Held text that splits in two ways, or in none: reported, never guessed. */
START_TEST(test_gap_ambiguous_and_unmatched)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS), 1, NULL, 0);

    feed(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)), GW_TOK_CONTINUE);
    /* "abab" in 3 pieces: a|b|ab or ab|a|b */
    step(r,
         chunk(choice(NUL_, content("abab peak"), item_text(17, "abab peak", 9, "-0.5")),
               timings(5)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[17]}",
                  content("abab peak")),
                "")));
    /* text that does not end with the item's piece, and no stop string explains it */
    step(r, chunk(choice(NUL_, content("zz"), item_text(14, "zz", 2, "-0.5")), timings(7)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[14]}",
                  content("zz")),
                "")));
    step(r, chunk(choice("\"length\"", "{}", NULL), timings(7)),
         ev(out("{\"finish_reason\":\"length\",\"index\":0,\"delta\":{},\"stop_reason\":null,"
                "\"token_ids_complete\":false,\"token_ids_missing\":["
                "{\"position\":1,\"count\":3,\"reason\":\"ambiguous_text\"},"
                "{\"position\":5,\"count\":1,\"reason\":\"unmatched_text\"}],\"token_ids\":[]}",
                timings(7))));
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Stream: stops at listed IDs
 * ------------------------------------------------------------------------------- */

#define SYN(choice_json) \
    "{\"choices\":[" choice_json "],\"created\":7,\"id\":\"chatcmpl-1\",\"model\":\"pub\"," \
    "\"system_fingerprint\":\"b1-fp\",\"object\":\"chat.completion.chunk\"}"

/* The item of a listed ID: the gateway ends the choice there and cancels the backend. */
START_TEST(test_stop_at_listed_id)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS ",\"stop_token_ids\":[10]"), 1, NULL, 0);
    const char *got;

    feed(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)), GW_TOK_CONTINUE);
    got = feed(r, chunk(choice(NUL_, content("\xE3\x83\xA0"), item(10)), timings(2)), GW_TOK_STOP);
    ck_bytes_eq(got, S("%s%s%s",
                       ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,"
                                "\"token_ids\":[10]}",
                                content("\xE3\x83\xA0")),
                              "")),
                       ev(SYN("{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{},"
                              "\"stop_reason\":10,\"token_ids\":[],\"token_ids_complete\":true}")),
                       "data: [DONE]\n\n"));
    /* what the backend still sends is dropped */
    ck_bytes_eq(feed(r, chunk(choice(NUL_, content(" view"), item(14)), timings(3)), GW_TOK_STOP),
                "");
    ck_bytes_eq(feed(r, "[DONE]", GW_TOK_CONTINUE), "");
}
END_TEST

START_TEST(test_stop_at_listed_id_with_usage)
{
    gw_tok_resp_t *r = resp(
        CHAT_BODY(IDS ",\"stop_token_ids\":[10],\"stream_options\":{\"include_usage\":true}"), 1,
        NULL, 1);
    const char *got;

    feed(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)), GW_TOK_CONTINUE);
    got = feed(r, chunk(choice(NUL_, content("\xE3\x83\xA0"), item(10)), timings(2)), GW_TOK_STOP);
    ck_bytes_eq(got, S("%s%s%s%s",
                       ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,"
                                "\"token_ids\":[10]}",
                                content("\xE3\x83\xA0")),
                              "")),
                       ev(SYN("{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{},"
                              "\"stop_reason\":10,\"token_ids\":[],\"token_ids_complete\":true}")),
                       ev("{\"choices\":[],\"created\":7,\"id\":\"chatcmpl-1\",\"model\":\"pub\","
                          "\"system_fingerprint\":\"b1-fp\",\"object\":\"chat.completion.chunk\","
                          "\"usage\":{\"completion_tokens\":2,\"prompt_tokens\":2,"
                          "\"total_tokens\":4}}"),
                       "data: [DONE]\n\n"));
}
END_TEST

/* n = 2: one choice stops at a listed ID, the other goes on; [DONE] is the backend's. */
START_TEST(test_stop_one_of_two_choices)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS ",\"n\":2,\"stop_token_ids\":[10]"), 1, NULL, 1);

    step(r, chunk(choice_i(0, NUL_, content(" faces"), item(9)), timings(1)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[9]}",
                  content(" faces")),
                PROMPT_IDS)));
    step(r, chunk(choice_i(1, NUL_, content(" view"), item(14)), timings(1)),
         ev(out(S("{\"finish_reason\":null,\"index\":1,\"delta\":%s,\"token_ids\":[14]}",
                  content(" view")),
                "")));
    step(r, chunk(choice_i(0, NUL_, content("\xE3\x83\xA0"), item(10)), timings(2)),
         S("%s%s",
           ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[10]}",
                    content("\xE3\x83\xA0")),
                  "")),
           ev(SYN("{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{},"
                  "\"stop_reason\":10,\"token_ids\":[],\"token_ids_complete\":true}"))));
    /* choice 0 is over: the backend's further chunks for it are dropped */
    step(r, chunk(choice_i(0, NUL_, content(" COM"), item(15)), timings(3)), "");
    step(r, chunk(choice_i(1, NUL_, content(" COM"), item(15)), timings(2)),
         ev(out(S("{\"finish_reason\":null,\"index\":1,\"delta\":%s,\"token_ids\":[15]}",
                  content(" COM")),
                "")));
    step(r, chunk(choice_i(0, "\"length\"", "{}", NULL), timings(3)), "");
    step(r, chunk(choice_i(1, "\"length\"", "{}", NULL), timings(2)),
         ev(out("{\"finish_reason\":\"length\",\"index\":1,\"delta\":{},\"stop_reason\":null,"
                "\"token_ids_complete\":true,\"token_ids\":[]}",
                timings(2))));
    step(r, "[DONE]", "data: [DONE]\n\n");
}
END_TEST

/* A listed control token: llama-server renders it "" and keeps going; the text-less
 * gap before the next item is taken as the listed token, and nothing after it is sent. */
START_TEST(test_stop_inferred_control_token)
{
    static const int64_t special[] = {4, -1};
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS ",\"stop_token_ids\":[4]"), 1, special, 0);
    const char *got;

    step(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[9]}",
                  content(" faces")),
                "")));
    got = feed(r, chunk(choice(NUL_, content(" view"), item(14)), timings(3)), GW_TOK_STOP);
    ck_bytes_eq(got, S("%s%s",
                       ev(SYN("{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{},"
                              "\"stop_reason\":4,\"token_ids\":[4],\"token_ids_complete\":false,"
                              "\"token_ids_missing\":[{\"position\":1,\"count\":1,"
                              "\"reason\":\"stop_token_inferred\"}]}")),
                       "data: [DONE]\n\n"));
    ck_bytes_eq(feed(r, chunk(choice(NUL_, content(" COM"), item(15)), timings(4)), GW_TOK_STOP),
                "");
}
END_TEST

/* A listed token that is not special: llama-server stops at its text (sent as a stop
 * string) and cuts it; the gateway puts the text back, as vLLM includes it. */
START_TEST(test_stop_listed_id_by_text)
{
    gw_tok_resp_t *r = resp(CHAT_BODY(IDS ",\"stop_token_ids\":[11]"), 1, NULL, 0);

    feed(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)), GW_TOK_CONTINUE);
    feed(r, chunk(choice(NUL_, content("\xE3\x83\xA0"), item(10)), timings(2)), GW_TOK_CONTINUE);
    step(r, chunk(choice("\"stop\"", "{}", NULL), S("%s%s", timings(3), verbose("word", "merge"))),
         ev(out("{\"finish_reason\":\"stop\",\"index\":0,\"delta\":{\"content\":\"merge\"},"
                "\"stop_reason\":11,\"token_ids_complete\":true,\"token_ids\":[11]}",
                timings(3))));
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Stream: completions
 * ------------------------------------------------------------------------------- */

static const char *cchunk(const char *text, const char *lp, const char *finish, const char *tail)
{
    return S("{\"choices\":[{\"text\":%s,\"index\":0,\"logprobs\":%s,\"finish_reason\":%s}],"
             "\"created\":7,\"model\":\"models/b.gguf\",\"system_fingerprint\":\"b1-fp\","
             "\"object\":\"text_completion\",\"id\":\"cmpl-1\"%s}",
             jstr(text, strlen(text)), lp, finish, tail);
}

static const char *cout(const char *text, const char *finish, const char *extra,
                        const char *tail)
{
    return S("{\"choices\":[{\"text\":%s,\"index\":0,\"logprobs\":null,\"finish_reason\":%s%s}],"
             "\"created\":7,\"model\":\"pub\",\"system_fingerprint\":\"b1-fp\","
             "\"object\":\"text_completion\",\"id\":\"cmpl-1\"%s}",
             jstr(text, strlen(text)), finish, extra, tail);
}

START_TEST(test_completions_stream)
{
    gw_tok_resp_t *r = resp("{\"prompt\":\"p\",\"stream\":true" IDS "}", 0, NULL, 1);

    step(r, cchunk(" faces", S("{\"content\":[%s]}", item(9)), NUL_, timings(1)),
         ev(cout(" faces", NUL_, ",\"token_ids\":[9]" PROMPT_IDS, "")));
    step(r, cchunk(" view", S("{\"content\":[%s]}", item(14)), NUL_, timings(2)),
         ev(cout(" view", NUL_, ",\"token_ids\":[14]", "")));
    /* the finish chunk of completions carries usage and timings: both kept */
    step(r, cchunk("", NUL_, "\"stop\"", S("%s%s", usage(3, 2), timings(3))),
         ev(cout("", "\"stop\"",
                 ",\"stop_reason\":null,\"token_ids_complete\":false,\"token_ids_missing\":"
                 "[{\"position\":2,\"count\":1,\"reason\":"
                 "\"end_of_generation_token_not_reported\"}],\"token_ids\":[]",
                 S("%s%s", usage(3, 2), timings(3)))));
    step(r, "[DONE]", "data: [DONE]\n\n");
}
END_TEST

START_TEST(test_completions_stop_at_listed_id)
{
    gw_tok_resp_t *r =
        resp("{\"prompt\":\"p\",\"stream\":true,\"stop_token_ids\":[14]" IDS "}", 0, NULL, 1);
    const char *got;

    feed(r, cchunk(" faces", S("{\"content\":[%s]}", item(9)), NUL_, timings(1)),
         GW_TOK_CONTINUE);
    got = feed(r, cchunk(" view", S("{\"content\":[%s]}", item(14)), NUL_, timings(2)),
               GW_TOK_STOP);
    ck_bytes_eq(got,
                S("%s%s%s", ev(cout(" view", NUL_, ",\"token_ids\":[14]", "")),
                  ev("{\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,"
                     "\"finish_reason\":\"stop\",\"stop_reason\":14,\"token_ids\":[],"
                     "\"token_ids_complete\":true}],\"created\":7,\"id\":\"cmpl-1\","
                     "\"model\":\"pub\",\"system_fingerprint\":\"b1-fp\","
                     "\"object\":\"text_completion\",\"usage\":{\"completion_tokens\":2,"
                     "\"prompt_tokens\":2,\"total_tokens\":4}}"),
                  "data: [DONE]\n\n"));
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Non-stream bodies
 * ------------------------------------------------------------------------------- */

static const char *body(const char *content_text, const char *finish, const char *items,
                        const char *tail)
{
    return S("{\"choices\":[{\"finish_reason\":%s,\"index\":0,\"message\":{\"role\":"
             "\"assistant\",\"content\":%s}%s%s%s}],\"created\":7,\"model\":\"models/b.gguf\","
             "\"system_fingerprint\":\"b1-fp\",\"object\":\"chat.completion\"%s}",
             finish, jstr(content_text, strlen(content_text)),
             items ? ",\"logprobs\":{\"content\":[" : "", items ? items : "", items ? "]}" : "",
             tail);
}

static const char *body_out(const char *content_text, const char *finish, const char *extra,
                            const char *tail)
{
    return S("{\"choices\":[{\"finish_reason\":%s,\"index\":0,\"message\":{\"role\":"
             "\"assistant\",\"content\":%s}%s}],\"created\":7,\"model\":\"pub\","
             "\"system_fingerprint\":\"b1-fp\",\"object\":\"chat.completion\"%s}",
             finish, jstr(content_text, strlen(content_text)), extra, tail);
}

static const char *vtokens(const char *ids, const char *stop_type, const char *word)
{
    return S(",\"__verbose\":{\"content\":\"\",\"tokens\":%s,\"stop_type\":\"%s\","
             "\"stopping_word\":%s}",
             ids, stop_type, jstr(word, strlen(word)));
}

static const char *rewrite_body(gw_tok_resp_t *r, const char *b)
{
    gw_buf_t o;
    size_t len;

    gw_buf_init(&o, 1 << 20);
    gw_tok_resp_body(r, b, strlen(b), &o);
    return keep(gw_buf_take(&o, &len));
}

static const char *items_of(const int *ids, size_t n)
{
    const char *s = "";
    size_t i;

    for (i = 0; i < n; i++)
        s = S("%s%s%s", s, i ? "," : "", item(ids[i]));
    return s;
}

START_TEST(test_body_verbose_tokens)
{
    gw_tok_resp_t *r = resp("{\"messages\":[]" IDS "}", 1, NULL, 1);
    static const int ids[] = {9, 10};
    const char *tail = S("%s,\"id\":\"c\"%s%s", usage(3, 2), timings(3),
                         vtokens("[9,10,2]", "eos", ""));

    ck_bytes_eq(rewrite_body(r, body(" faces\xE3\x83\xA0", "\"stop\"", items_of(ids, 2), tail)),
                body_out(" faces\xE3\x83\xA0", "\"stop\"",
                         ",\"stop_reason\":null,\"token_ids\":[9,10,2],"
                         "\"token_ids_complete\":true",
                         S("%s,\"id\":\"c\"%s" PROMPT_IDS, usage(3, 2), timings(3))));
}
END_TEST

/* A listed control token: llama-server went on past it; the gateway cuts the content,
 * the logprobs and the usage there. */
START_TEST(test_body_cut_at_listed_id)
{
    static const int64_t special[] = {4, -1};
    static const int ids[] = {9, 10, 14, 15}; /* the control token gets no item */
    gw_tok_resp_t *r = resp("{\"messages\":[],\"stop_token_ids\":[4]" IDS "}", 1, special, 1);
    const char *b = body(" faces\xE3\x83\xA0 view COM", "\"length\"", items_of(ids, 4),
                         S("%s%s", usage(5, 2), vtokens("[9,10,4,14,15]", "limit", "")));

    ck_bytes_eq(rewrite_body(r, b),
                body_out(" faces\xE3\x83\xA0", "\"stop\"",
                         ",\"stop_reason\":4,\"token_ids\":[9,10,4],\"token_ids_complete\":true",
                         S("%s" PROMPT_IDS, usage(3, 2))));
}
END_TEST

/*
 * The same with the client's logprobs: the items after the stop token go too, and the
 * ones before it stay byte for byte.
 *
 * BUG (reported, not fixed here): the cut rebuilds the logprobs value with json_dumps,
 * so every float in the kept items is re-printed (-0.843 becomes -0.84299999999999997)
 * and any other member of the backend's logprobs object is lost, against this module's
 * contract ("floats and key order stay exactly as the backend wrote them"). Splicing out
 * the items after the cut (jspan array iteration + gw_jedit_remove_member) keeps them.
 */
START_TEST(test_body_cut_keeps_client_logprobs)
{
    static const int64_t special[] = {4, -1};
    static const int ids[] = {9, 10, 14, 15}; /* the control token gets no item */
    gw_tok_resp_t *r =
        resp("{\"messages\":[],\"stop_token_ids\":[4],\"logprobs\":true" IDS "}", 1, special, 0);
    const char *b = body(" faces\xE3\x83\xA0 view COM", "\"length\"", items_of(ids, 4),
                         S("%s%s", usage(5, 2), vtokens("[9,10,4,14,15]", "limit", "")));

    ck_bytes_eq(rewrite_body(r, b),
                body_out(" faces\xE3\x83\xA0", "\"stop\"",
                         S(",\"logprobs\":{\"content\":[%s]},\"stop_reason\":4,"
                           "\"token_ids\":[9,10,4],\"token_ids_complete\":true",
                           items_of(ids, 2)),
                         usage(3, 2)));
}
END_TEST

/*
 * BUG (reported, not fixed here): logprobs with top_logprobs 0 and a cut at a listed
 * stop ID. The cut replaces the whole logprobs value, and the top_logprobs 0 handling
 * then adds "[]" splices inside that replaced range; gw_jedit_apply refuses overlapping
 * splices, and gw_tok_resp_body falls back to the backend's body unchanged: backend
 * model name, __verbose, no token_ids, the text after the stop token, uncut usage.
 */
START_TEST(test_body_cut_with_top_logprobs_zero)
{
    static const int64_t special[] = {4, -1};
    static const int ids[] = {9, 10, 14, 15}; /* the control token gets no item */
    gw_tok_resp_t *r = resp("{\"messages\":[],\"stop_token_ids\":[4],\"logprobs\":true,"
                            "\"top_logprobs\":0" IDS "}",
                            1, special, 0);
    const char *b = body(" faces\xE3\x83\xA0 view COM", "\"length\"", items_of(ids, 4),
                         S("%s%s", usage(5, 2), vtokens("[9,10,4,14,15]", "limit", "")));
    const char *got = rewrite_body(r, b);
    json_t *j = keep_json(parse(got)), *ch = json_array_get(json_object_get(j, "choices"), 0);
    json_t *it;
    size_t i;

    ck_assert_msg(strcmp(got, b) != 0, "the backend body came back unchanged");
    ck_assert_str_eq(json_string_value(json_object_get(j, "model")), "pub");
    ck_assert_ptr_null(json_object_get(j, "__verbose"));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(ch, "message"),
                                                       "content")),
                     " faces\xE3\x83\xA0");
    ck_assert_int_eq(json_integer_value(json_object_get(ch, "stop_reason")), 4);
    gw_test_json_eq(keep(json_dumps(json_object_get(ch, "token_ids"), JSON_ENCODE_ANY)),
                    "[9,10,4]");
    ck_assert_uint_eq(json_array_size(json_object_get(json_object_get(ch, "logprobs"),
                                                      "content")),
                      2);
    json_array_foreach(json_object_get(json_object_get(ch, "logprobs"), "content"), i, it)
        ck_assert_uint_eq(json_array_size(json_object_get(it, "top_logprobs")), 0);
}
END_TEST

/* A listed token that is not special: llama-server stopped at its text and cut it; the
 * text belongs to the output (vLLM). */
START_TEST(test_body_stop_text_included)
{
    static const int ids[] = {9, 10};
    gw_tok_resp_t *r = resp("{\"messages\":[],\"stop_token_ids\":[11]" IDS "}", 1, NULL, 0);
    const char *b = body(" faces\xE3\x83\xA0", "\"stop\"", items_of(ids, 2),
                         S("%s%s", usage(3, 2), vtokens("[9,10,11]", "word", "merge")));

    ck_bytes_eq(rewrite_body(r, b),
                body_out(" faces\xE3\x83\xA0merge", "\"stop\"",
                         ",\"stop_reason\":11,\"token_ids\":[9,10,11],"
                         "\"token_ids_complete\":true",
                         usage(3, 2)));
}
END_TEST

/* A stop string of the client's: stop_reason is the string. */
START_TEST(test_body_stop_word)
{
    static const int ids[] = {9};
    gw_tok_resp_t *r = resp("{\"messages\":[],\"stop\":[\"merge\"]" IDS "}", 1, NULL, 0);
    const char *b = body(" faces", "\"stop\"", items_of(ids, 1),
                         S("%s%s", usage(2, 2), vtokens("[9,11]", "word", "merge")));

    ck_bytes_eq(rewrite_body(r, b),
                body_out(" faces", "\"stop\"",
                         ",\"stop_reason\":\"merge\",\"token_ids\":[9,11],"
                         "\"token_ids_complete\":true",
                         usage(2, 2)));
}
END_TEST

/* Older llama-server: no __verbose. Exact when every token has an item. */
START_TEST(test_body_old_build)
{
    static const int ids[] = {9, 10, 14};
    gw_tok_resp_t *r = resp("{\"messages\":[]" IDS "}", 1, NULL, 0);

    ck_bytes_eq(rewrite_body(r, body(" faces\xE3\x83\xA0 view", "\"length\"", items_of(ids, 3),
                                     usage(3, 2))),
                body_out(" faces\xE3\x83\xA0 view", "\"length\"",
                         ",\"stop_reason\":null,\"token_ids\":[9,10,14],"
                         "\"token_ids_complete\":true",
                         usage(3, 2)));
    /* tokens without items (byte tokens in a non-stream answer): said, not hidden */
    ck_bytes_eq(rewrite_body(r, body(" faces" EMOJI, "\"length\"", items_of(ids, 1),
                                     usage(5, 2))),
                body_out(" faces" EMOJI, "\"length\"",
                         ",\"stop_reason\":null,\"token_ids\":[9],\"token_ids_complete\":false,"
                         "\"token_ids_missing\":[{\"position\":null,\"count\":4,"
                         "\"reason\":\"tokens_not_reported\"}]",
                         usage(5, 2)));
}
END_TEST

START_TEST(test_body_completions)
{
    gw_tok_resp_t *r = resp("{\"prompt\":\"p\"" IDS "}", 0, NULL, 1);
    const char *b =
        S("{\"choices\":[{\"text\":\" faces\",\"index\":0,\"logprobs\":{\"content\":[%s]},"
          "\"finish_reason\":\"length\"}],\"created\":7,\"model\":\"models/b.gguf\","
          "\"object\":\"text_completion\"%s%s}",
          item(9), usage(1, 2), vtokens("[9]", "limit", ""));

    ck_bytes_eq(rewrite_body(r, b),
                S("{\"choices\":[{\"text\":\" faces\",\"index\":0,\"logprobs\":null,"
                  "\"finish_reason\":\"length\",\"stop_reason\":null,\"token_ids\":[9],"
                  "\"token_ids_complete\":true" PROMPT_IDS "}],\"created\":7,\"model\":\"pub\","
                  "\"object\":\"text_completion\"%s}",
                  usage(1, 2)));
}
END_TEST

/* Not a completion body (an error): unchanged. */
START_TEST(test_body_passthrough)
{
    gw_tok_resp_t *r = resp("{\"messages\":[]" IDS "}", 1, NULL, 1);
    static const char *const same[] = {
        "{\"error\":{\"code\":400,\"message\":\"bad\"}}",
        "[1,2]",
        "not json",
        "{\"choices\":{}}",
        NULL,
    };
    size_t i;

    for (i = 0; same[i]; i++)
        ck_bytes_eq(rewrite_body(r, same[i]), same[i]);
}
END_TEST

/* The processor keeps its own reference on the vocabulary and copies of what it keeps. */
START_TEST(test_resp_owns_its_inputs)
{
    gw_tok_req_t tr;
    gw_tok_resp_t *r;
    int64_t prompt[2] = {1, 9};
    char model[4] = "pub";

    detect(CHAT_BODY(IDS ",\"stop_token_ids\":[10]"), 1, &tr);
    gw_vocab_ref(vocab);
    r = track(gw_tok_resp_new(&tr, vocab, prompt, 2, model, 3));
    gw_tok_req_free(&tr);
    gw_vocab_unref(vocab); /* the test's extra reference; the processor holds its own */
    prompt[0] = 77;
    model[0] = 'X';
    step(r, chunk(choice(NUL_, content(" faces"), item(9)), timings(1)),
         ev(out(S("{\"finish_reason\":null,\"index\":0,\"delta\":%s,\"token_ids\":[9]}",
                  content(" faces")),
                PROMPT_IDS)));
    gw_tok_resp_free(NULL);
}
END_TEST

static Suite *tokids_suite(void)
{
    Suite *s = suite_create("tokids");
    TCase *tc;

    tc = tcase_create("request");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_detect_not_needed);
    tcase_add_loop_test(tc, test_detect_errors, 0, (int)N_DETECT_BAD);
    tcase_add_test(tc, test_detect_limit_edge);
    tcase_add_test(tc, test_detect_flags_chat);
    tcase_add_test(tc, test_detect_flags_completions);
    tcase_add_test(tc, test_body_chat_stream);
    tcase_add_test(tc, test_body_chat_nonstream);
    tcase_add_test(tc, test_body_stop_merge);
    tcase_add_test(tc, test_body_logprobs);
    tcase_add_test(tc, test_body_stream_options);
    tcase_add_test(tc, test_body_bytes_kept);
    tcase_add_test(tc, test_body_owned_positions);
    tcase_add_test(tc, test_body_duplicate_keys);
    tcase_add_test(tc, test_body_escaped_keys);
    tcase_add_test(tc, test_body_stream_options_bytes);
    tcase_add_test(tc, test_body_huge_integer);
    tcase_add_test(tc, test_body_ceiling_exact);
    tcase_add_test(tc, test_body_random_vs_tree);
    tcase_add_test(tc, test_body_stop_id_out_of_range);
    tcase_add_test(tc, test_body_ceiling);
    suite_add_tcase(s, tc);

    tc = tcase_create("stream");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_stream_plain);
    tcase_add_test(tc, test_stream_finish_keeps_timings);
    tcase_add_test(tc, test_stream_include_usage);
    tcase_add_test(tc, test_stream_timings_per_token);
    tcase_add_test(tc, test_stream_client_logprobs);
    tcase_add_test(tc, test_stream_top_logprobs_zero);
    tcase_add_test(tc, test_stream_verbose_kept_when_asked);
    tcase_add_test(tc, test_stream_without_ids);
    tcase_add_test(tc, test_stream_error_event);
    tcase_add_test(tc, test_resp_owns_its_inputs);
    suite_add_tcase(s, tc);

    tc = tcase_create("gaps");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_gap_held_back_text);
    tcase_add_test(tc, test_gap_multibyte);
    tcase_add_test(tc, test_gap_textless);
    tcase_add_test(tc, test_gap_end_of_generation);
    tcase_add_test(tc, test_gap_at_length_finish);
    tcase_add_test(tc, test_gap_stop_string_token);
    tcase_add_test(tc, test_gap_stop_string_token_ambiguous);
    tcase_add_test(tc, test_gap_held_then_stop_hits);
    tcase_add_test(tc, test_gap_ambiguous_and_unmatched);
    suite_add_tcase(s, tc);

    tc = tcase_create("stops");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_stop_at_listed_id);
    tcase_add_test(tc, test_stop_at_listed_id_with_usage);
    tcase_add_test(tc, test_stop_one_of_two_choices);
    tcase_add_test(tc, test_stop_inferred_control_token);
    tcase_add_test(tc, test_stop_listed_id_by_text);
    tcase_add_test(tc, test_completions_stream);
    tcase_add_test(tc, test_completions_stop_at_listed_id);
    suite_add_tcase(s, tc);

    tc = tcase_create("body");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_body_verbose_tokens);
    tcase_add_test(tc, test_body_cut_at_listed_id);
    tcase_add_test(tc, test_body_cut_keeps_client_logprobs);
    tcase_add_test(tc, test_body_cut_with_top_logprobs_zero);
    tcase_add_test(tc, test_body_stop_text_included);
    tcase_add_test(tc, test_body_stop_word);
    tcase_add_test(tc, test_body_old_build);
    tcase_add_test(tc, test_body_completions);
    tcase_add_test(tc, test_body_passthrough);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tokids_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
