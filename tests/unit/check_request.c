/*
 * check_request.c - unit tests for OpenAI request validation (openai/request.c).
 *
 * Table-driven: for every endpoint and every rule, a value of a wrong type must give
 * GW_EPARAM with the exact message and `param`; null is accepted where the field is
 * optional; missing required fields (model, messages, prompt, input) give GW_EBADREQ;
 * an empty body and a syntax error give GW_EBADJSON, the latter with line and column;
 * a body that is not an object; and `stop` arrays holding a non-string. Accepted bodies
 * come back parsed in *root; rejected ones leave *root NULL (ASan checks the rest).
 *
 * The fast path (gw_oai_check) is held to gw_oai_parse differentially: whenever it says
 * yes, gw_oai_parse says GW_OK and its tree has the same `model` bytes and `stream`
 * verdict; every case above runs through both. Then duplicate keys (the last one wins,
 * escaped keys included), the bodies it must hand to the tree path (token-ID fields, an
 * escaped model name), large prompts, and a deterministic mutation loop over seed bodies
 * of every endpoint, where a "no" on a body gw_oai_parse accepts must also be explained.
 */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jcheck.h"
#include "core/jspan.h"
#include "openai/request.h"
#include "testutil.h"

typedef struct req_case {
    gw_oai_kind_t kind;
    const char *body;
    gw_err_t rc;
    const char *param;
    const char *msg; /* exact message */
} req_case_t;

#define CHAT(x) "{\"model\":\"m\",\"messages\":[]," x "}"
#define CMPL(x) "{\"model\":\"m\",\"prompt\":\"p\"," x "}"
#define EMB(x) "{\"model\":\"m\",\"input\":\"i\"," x "}"
#define WRONG(kind, wrap, field, value, expect, got)                                          \
    {kind, wrap("\"" field "\":" value), GW_EPARAM, field,                                    \
     "'" field "' must be " expect ", got " got}

static const req_case_t cases[] = {
    /* chat: every rule with a wrong type */
    {GW_OAI_CHAT, "{\"model\":\"m\",\"messages\":{}}", GW_EPARAM, "messages",
     "'messages' must be an array of messages, got an object"},
    {GW_OAI_CHAT, "{\"model\":\"m\",\"messages\":\"hi\"}", GW_EPARAM, "messages",
     "'messages' must be an array of messages, got a string"},
    {GW_OAI_CHAT, "{\"model\":\"m\",\"messages\":null}", GW_EPARAM, "messages",
     "'messages' must be an array of messages, got null"},
    WRONG(GW_OAI_CHAT, CHAT, "stream", "\"yes\"", "a boolean", "a string"),
    WRONG(GW_OAI_CHAT, CHAT, "stream", "1", "a boolean", "an integer"),
    WRONG(GW_OAI_CHAT, CHAT, "stream_options", "true", "an object", "a boolean"),
    WRONG(GW_OAI_CHAT, CHAT, "stream_options", "[]", "an object", "an array"),
    WRONG(GW_OAI_CHAT, CHAT, "max_tokens", "1.5", "an integer", "a number"),
    WRONG(GW_OAI_CHAT, CHAT, "max_tokens", "\"10\"", "an integer", "a string"),
    WRONG(GW_OAI_CHAT, CHAT, "max_completion_tokens", "false", "an integer", "a boolean"),
    WRONG(GW_OAI_CHAT, CHAT, "n", "2.0", "an integer", "a number"),
    WRONG(GW_OAI_CHAT, CHAT, "temperature", "\"0.5\"", "a number", "a string"),
    WRONG(GW_OAI_CHAT, CHAT, "top_p", "[1]", "a number", "an array"),
    WRONG(GW_OAI_CHAT, CHAT, "presence_penalty", "{}", "a number", "an object"),
    WRONG(GW_OAI_CHAT, CHAT, "frequency_penalty", "true", "a number", "a boolean"),
    WRONG(GW_OAI_CHAT, CHAT, "seed", "1e3", "an integer", "a number"),
    WRONG(GW_OAI_CHAT, CHAT, "stop", "5", "a string or an array of strings", "an integer"),
    WRONG(GW_OAI_CHAT, CHAT, "stop", "{}", "a string or an array of strings", "an object"),
    WRONG(GW_OAI_CHAT, CHAT, "logprobs", "1", "a boolean", "an integer"),
    WRONG(GW_OAI_CHAT, CHAT, "top_logprobs", "true", "an integer", "a boolean"),
    WRONG(GW_OAI_CHAT, CHAT, "tools", "{}", "an array", "an object"),
    WRONG(GW_OAI_CHAT, CHAT, "response_format", "\"json\"", "an object", "a string"),
    WRONG(GW_OAI_CHAT, CHAT, "logit_bias", "\"x\"", "an object", "a string"),
    WRONG(GW_OAI_CHAT, CHAT, "user", "1", "a string", "an integer"),
    /* completions */
    {GW_OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":5}", GW_EPARAM, "prompt",
     "'prompt' must be a string or an array, got an integer"},
    {GW_OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":null}", GW_EPARAM, "prompt",
     "'prompt' must be a string or an array, got null"},
    WRONG(GW_OAI_COMPLETIONS, CMPL, "stream", "\"true\"", "a boolean", "a string"),
    WRONG(GW_OAI_COMPLETIONS, CMPL, "stream_options", "1", "an object", "an integer"),
    WRONG(GW_OAI_COMPLETIONS, CMPL, "max_tokens", "2.5", "an integer", "a number"),
    WRONG(GW_OAI_COMPLETIONS, CMPL, "n", "\"2\"", "an integer", "a string"),
    WRONG(GW_OAI_COMPLETIONS, CMPL, "temperature", "false", "a number", "a boolean"),
    WRONG(GW_OAI_COMPLETIONS, CMPL, "top_p", "\"1\"", "a number", "a string"),
    WRONG(GW_OAI_COMPLETIONS, CMPL, "presence_penalty", "[]", "a number", "an array"),
    WRONG(GW_OAI_COMPLETIONS, CMPL, "frequency_penalty", "{}", "a number", "an object"),
    WRONG(GW_OAI_COMPLETIONS, CMPL, "seed", "0.5", "an integer", "a number"),
    WRONG(GW_OAI_COMPLETIONS, CMPL, "stop", "true", "a string or an array of strings",
          "a boolean"),
    WRONG(GW_OAI_COMPLETIONS, CMPL, "logprobs", "\"x\"", "an integer", "a string"),
    WRONG(GW_OAI_COMPLETIONS, CMPL, "logprobs", "1.5", "an integer", "a number"),
    WRONG(GW_OAI_COMPLETIONS, CMPL, "echo", "0", "a boolean", "an integer"),
    WRONG(GW_OAI_COMPLETIONS, CMPL, "suffix", "[]", "a string", "an array"),
    WRONG(GW_OAI_COMPLETIONS, CMPL, "user", "{}", "a string", "an object"),
    /* embeddings */
    {GW_OAI_EMBEDDINGS, "{\"model\":\"m\",\"input\":{}}", GW_EPARAM, "input",
     "'input' must be a string or an array, got an object"},
    WRONG(GW_OAI_EMBEDDINGS, EMB, "encoding_format", "1", "a string", "an integer"),
    WRONG(GW_OAI_EMBEDDINGS, EMB, "dimensions", "\"256\"", "an integer", "a string"),
    WRONG(GW_OAI_EMBEDDINGS, EMB, "user", "true", "a string", "a boolean"),
    /* missing required fields */
    {GW_OAI_CHAT, "{\"messages\":[]}", GW_EBADREQ, "model", "you must provide a model parameter"},
    {GW_OAI_COMPLETIONS, "{}", GW_EBADREQ, "model", "you must provide a model parameter"},
    {GW_OAI_OTHER, "{\"input\":\"x\"}", GW_EBADREQ, "model", "you must provide a model parameter"},
    {GW_OAI_CHAT, "{\"model\":\"m\"}", GW_EBADREQ, "messages", "'messages' is required"},
    {GW_OAI_CHAT, "{\"model\":\"m\",\"stream\":\"x\"}", GW_EBADREQ, "messages",
     "'messages' is required"},
    {GW_OAI_COMPLETIONS, "{\"model\":\"m\",\"messages\":[]}", GW_EBADREQ, "prompt",
     "'prompt' is required"},
    {GW_OAI_EMBEDDINGS, "{\"model\":\"m\"}", GW_EBADREQ, "input", "'input' is required"},
    /* model of a wrong type, checked first for every kind */
    {GW_OAI_CHAT, "{\"model\":1,\"messages\":[]}", GW_EPARAM, "model",
     "'model' must be a string, got an integer"},
    {GW_OAI_OTHER, "{\"model\":null}", GW_EPARAM, "model", "'model' must be a string, got null"},
    {GW_OAI_EMBEDDINGS, "{\"model\":[\"m\"]}", GW_EPARAM, "model",
     "'model' must be a string, got an array"},
    /* not an object */
    {GW_OAI_CHAT, "[]", GW_EBADREQ, "", "request body must be a JSON object, got an array"},
    {GW_OAI_CHAT, "null", GW_EBADREQ, "", "request body must be a JSON object, got null"},
    {GW_OAI_COMPLETIONS, "\"x\"", GW_EBADREQ, "",
     "request body must be a JSON object, got a string"},
    {GW_OAI_OTHER, " 3.5 ", GW_EBADREQ, "", "request body must be a JSON object, got a number"},
    {GW_OAI_CHAT, "", GW_EBADJSON, "", "request body is empty: expected a JSON object"},
    /* stop arrays */
    {GW_OAI_CHAT, CHAT("\"stop\":[\"a\",1]"), GW_EPARAM, "stop",
     "'stop[1]' must be a string, got an integer"},
    {GW_OAI_CHAT, CHAT("\"stop\":[null]"), GW_EPARAM, "stop",
     "'stop[0]' must be a string, got null"},
    {GW_OAI_COMPLETIONS, CMPL("\"stop\":[\"a\",\"b\",[\"c\"]]"), GW_EPARAM, "stop",
     "'stop[2]' must be a string, got an array"},
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

static const char *kind_name(gw_oai_kind_t k)
{
    static const char *const names[] = {"chat", "completions", "embeddings", "other"};

    return names[k];
}

/*
 * The differential rule. Returns gw_oai_check's answer; when it is 1, gw_oai_parse must
 * accept the body and agree on `model` and `stream`. *parsed gets gw_oai_parse's code.
 */
static int fast_agrees(gw_oai_kind_t kind, const char *body, size_t len, gw_err_t *parsed)
{
    gw_oai_fast_t fast;
    gw_errbuf_t err = {{0}, {0}};
    json_t *root = NULL, *model;
    int f;

    memset(&fast, 0xa5, sizeof(fast));
    f = gw_oai_check(body, len, kind, GW_JCHECK_MAX_DEPTH, &fast);
    ck_assert_msg(f == 0 || f == 1, "gw_oai_check returned %d", f);
    *parsed = gw_oai_parse(body, len, kind, &root, &err);
    if (f) {
        ck_assert_msg(*parsed == GW_OK, "fast path accepts, gw_oai_parse: %s (%.*s)", err.msg,
                      (int)(len > 200 ? 200 : len), body);
        model = json_object_get(root, "model");
        ck_assert(fast.model >= body && fast.model + fast.model_len <= body + len);
        ck_assert_msg(fast.model_len == json_string_length(model) &&
                          memcmp(fast.model, json_string_value(model), fast.model_len) == 0,
                      "model [%.*s], tree [%s]", (int)fast.model_len, fast.model,
                      json_string_value(model));
        ck_assert_int_eq(fast.stream, json_is_true(json_object_get(root, "stream")));
    }
    json_decref(root);
    return f;
}

START_TEST(test_rejected)
{
    const req_case_t *c = &cases[_i];
    gw_errbuf_t err = {{0}, {0}};
    json_t *root = (json_t *)1;
    gw_err_t rc = gw_oai_parse(c->body, strlen(c->body), c->kind, &root, &err);

    ck_assert_msg(rc == c->rc, "case %d (%s) %s: %s, want %s (%s)", _i, kind_name(c->kind),
                  c->body, gw_err_name(rc), gw_err_name(c->rc), err.msg);
    ck_assert_ptr_null(root);
    ck_assert_msg(strcmp(err.msg, c->msg) == 0, "case %d %s:\n  got:  %s\n  want: %s", _i,
                  c->body, err.msg, c->msg);
    ck_assert_msg(strcmp(err.param, c->param) == 0, "case %d %s: param [%s], want [%s]", _i,
                  c->body, err.param, c->param);
    /* the fast path leaves every error to gw_oai_parse */
    ck_assert_int_eq(fast_agrees(c->kind, c->body, strlen(c->body), &rc), 0);
}
END_TEST

typedef struct ok_case {
    gw_oai_kind_t kind;
    const char *body;
} ok_case_t;

static const ok_case_t ok_cases[] = {
    {GW_OAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"},
    /* null is accepted for every optional field */
    {GW_OAI_CHAT,
     CHAT("\"stream\":null,\"stream_options\":null,\"max_tokens\":null,"
          "\"max_completion_tokens\":null,\"n\":null,\"temperature\":null,\"top_p\":null,"
          "\"presence_penalty\":null,\"frequency_penalty\":null,\"seed\":null,\"stop\":null,"
          "\"logprobs\":null,\"top_logprobs\":null,\"tools\":null,\"response_format\":null,"
          "\"logit_bias\":null,\"user\":null")},
    /* the right types, integers as numbers, llama.cpp extensions unchecked */
    {GW_OAI_CHAT,
     CHAT("\"stream\":true,\"stream_options\":{\"include_usage\":true},\"max_tokens\":5,"
          "\"n\":1,\"temperature\":1,\"top_p\":0.9,\"seed\":-1,\"stop\":\"x\","
          "\"logprobs\":false,\"top_logprobs\":0,\"tools\":[],\"response_format\":{},"
          "\"logit_bias\":[[1,2]],\"user\":\"u\",\"n_probs\":\"anything\","
          "\"stop_token_ids\":\"unchecked here\"")},
    {GW_OAI_CHAT, CHAT("\"stop\":[]")},
    {GW_OAI_CHAT, CHAT("\"stop\":[\"a\",\"\",\"b\"]")},
    {GW_OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":[1,2,3]}"},
    {GW_OAI_COMPLETIONS, CMPL("\"logprobs\":3,\"echo\":true,\"suffix\":\"s\",\"stop\":[\"a\"]")},
    {GW_OAI_COMPLETIONS, CMPL("\"logprobs\":true")},
    {GW_OAI_EMBEDDINGS, "{\"model\":\"m\",\"input\":[\"a\",\"b\"],\"dimensions\":8}"},
    /* embeddings have no stop rule: a stop array passes unchecked */
    {GW_OAI_EMBEDDINGS, EMB("\"stop\":[1]")},
    /* other endpoints: only the model is checked */
    {GW_OAI_OTHER, "{\"model\":\"m\",\"messages\":5,\"prompt\":{}}"},
    {GW_OAI_CHAT, " \n{\"model\":\"\",\"messages\":[]}\n "},
};
#define N_OK (sizeof(ok_cases) / sizeof(ok_cases[0]))

START_TEST(test_accepted)
{
    const ok_case_t *c = &ok_cases[_i];
    gw_errbuf_t err = {{0}, {0}};
    json_t *root = NULL;
    gw_err_t rc = gw_oai_parse(c->body, strlen(c->body), c->kind, &root, &err);

    ck_assert_msg(rc == GW_OK, "case %d (%s) %s: %s %s", _i, kind_name(c->kind), c->body,
                  gw_err_name(rc), err.msg);
    ck_assert_ptr_nonnull(root);
    ck_assert(json_is_object(root));
    ck_assert(json_is_string(json_object_get(root, "model")));
    /* the fast path says yes too, except to the token-ID fields (the tree path's) */
    ck_assert_int_eq(fast_agrees(c->kind, c->body, strlen(c->body), &rc),
                     json_object_get(root, "stop_token_ids") == NULL);
    json_decref(root);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Fast path: duplicates, declines, large bodies
 * ------------------------------------------------------------------------------- */

typedef struct fast_case {
    gw_oai_kind_t kind;
    const char *body;
    int fast;          /* gw_oai_check's answer */
    gw_err_t parsed;   /* gw_oai_parse's */
    const char *model; /* when fast */
    int stream;
} fast_case_t;

#define MSG "\"messages\":[]"

static const fast_case_t fast_cases[] = {
    /* duplicates: the last occurrence decides, for model, stream and every rule */
    {GW_OAI_CHAT, "{\"model\":1,\"model\":\"m\"," MSG "}", 1, GW_OK, "m", 0},
    {GW_OAI_CHAT, "{\"model\":\"a\"," MSG ",\"model\":\"b\"}", 1, GW_OK, "b", 0},
    {GW_OAI_CHAT, "{\"model\":\"a\",\"model\":null," MSG "}", 0, GW_EPARAM, NULL, 0},
    {GW_OAI_CHAT, "{\"model\":\"m\",\"stream\":true," MSG ",\"stream\":false}", 1, GW_OK, "m",
     0},
    {GW_OAI_CHAT, "{\"model\":\"m\",\"stream\":false," MSG ",\"stream\":true}", 1, GW_OK, "m",
     1},
    {GW_OAI_CHAT, "{\"model\":\"m\",\"stream\":1,\"stream\":true," MSG "}", 1, GW_OK, "m", 1},
    {GW_OAI_CHAT, "{\"model\":\"m\",\"stream\":true,\"stream\":1," MSG "}", 0, GW_EPARAM, NULL,
     0},
    {GW_OAI_CHAT, "{\"model\":\"m\",\"messages\":{},\"messages\":[]}", 1, GW_OK, "m", 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"messages\":5}", 0, GW_EPARAM, NULL, 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"stop\":[1],\"stop\":\"x\"}", 1, GW_OK, "m", 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"stop\":\"x\",\"stop\":[1]}", 0, GW_EPARAM, NULL,
     0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"stop\":[1],\"stop\":[\"a\",\"b\"]}", 1, GW_OK,
     "m", 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"max_tokens\":1.5,\"max_tokens\":2}", 1, GW_OK,
     "m", 0},
    {GW_OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"p\",\"prompt\":null}", 0, GW_EPARAM,
     NULL, 0},
    {GW_OAI_OTHER, "{\"model\":\"m\",\"model\":\"n\",\"stream\":true}", 1, GW_OK, "n", 1},
    /* escaped keys name the same member */
    {GW_OAI_CHAT, "{\"mod\\u0065l\":\"b\",\"model\":\"a\"," MSG "}", 1, GW_OK, "a", 0},
    {GW_OAI_CHAT, "{\"model\":\"a\",\"mod\\u0065l\":\"b\"," MSG "}", 1, GW_OK, "b", 0},
    {GW_OAI_CHAT, "{\"model\":\"a\",\"\\u006d\\u006F\\u0064\\u0065\\u006c\":\"c\"," MSG "}",
     1, GW_OK, "c", 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"m\\u0065ssages\":5}", 0, GW_EPARAM, NULL, 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"str\\u0065am\":true}", 1, GW_OK, "m", 1},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"stream\\u0000\":true}", 0, GW_EBADJSON, NULL, 0},
    {GW_OAI_CHAT,
     "{\"model\":\"m\"," MSG ",\"\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061"
     "\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061"
     "\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061"
     "\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061"
     "\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061"
     "\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061"
     "\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\\u0061\":1}",
     1, GW_OK, "m", 0}, /* a long escaped key: no name of ours */
    /* handed to the tree path */
    {GW_OAI_CHAT, "{\"model\":\"a\\u0062\"," MSG "}", 0, GW_OK, NULL, 0},
    {GW_OAI_CHAT, "{\"model\":\"a\\/b\"," MSG "}", 0, GW_OK, NULL, 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"stop_token_ids\":[1]}", 0, GW_OK, NULL, 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"stop_token_ids\":null}", 0, GW_OK, NULL, 0},
    {GW_OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"p\",\"return_token_ids\":true}", 0,
     GW_OK, NULL, 0},
    {GW_OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"p\",\"return_token_id\\u0073\":1}",
     0, GW_OK, NULL, 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"temperature\":1e308}", 0, GW_OK, NULL, 0},
    /* the token-ID path is chat and completions only */
    {GW_OAI_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"i\",\"stop_token_ids\":[1]}", 1, GW_OK,
     "m", 0},
    {GW_OAI_OTHER, "{\"model\":\"m\",\"return_token_ids\":true}", 1, GW_OK, "m", 0},
    /* stream is true only when literally true */
    {GW_OAI_OTHER, "{\"model\":\"m\",\"stream\":\"true\"}", 1, GW_OK, "m", 0},
    {GW_OAI_OTHER, "{\"model\":\"m\",\"stream\":1}", 1, GW_OK, "m", 0},
    {GW_OAI_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"i\",\"stream\":true}", 1, GW_OK, "m",
     1},
    /* model bytes as they are: UTF-8, empty, other escapes elsewhere */
    {GW_OAI_CHAT, "{\"model\":\"caf\xc3\xa9/Q\"," MSG "}", 1, GW_OK, "caf\xc3\xa9/Q", 0},
    {GW_OAI_CHAT, " {\"model\" : \"\" , " MSG " } ", 1, GW_OK, "", 0},
    {GW_OAI_CHAT, "{\"model\":\"m\",\"messages\":[{\"content\":\"\\\"\\u00e9\\n\"}]}", 1,
     GW_OK, "m", 0},
    /* invalid JSON never passes, whatever the members */
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG "} x", 0, GW_EBADJSON, NULL, 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",}", 0, GW_EBADJSON, NULL, 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"x\":\"\\ud800\"}", 0, GW_EBADJSON, NULL, 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"x\":\"\xc0\xaf\"}", 0, GW_EBADJSON, NULL, 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"seed\":9223372036854775808}", 0, GW_EBADJSON,
     NULL, 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"seed\":-9223372036854775808}", 1, GW_OK, "m", 0},
    {GW_OAI_CHAT, "{\"model\":\"m\"," MSG ",\"temperature\":1e999}", 0, GW_EBADJSON, NULL, 0},
};
#define N_FAST (sizeof(fast_cases) / sizeof(fast_cases[0]))

START_TEST(test_fast)
{
    const fast_case_t *c = &fast_cases[_i];
    gw_oai_fast_t fast;
    gw_err_t parsed;
    int f = fast_agrees(c->kind, c->body, strlen(c->body), &parsed);

    ck_assert_msg(f == c->fast, "case %d %s: fast %d, want %d", _i, c->body, f, c->fast);
    ck_assert_msg(parsed == c->parsed, "case %d %s: %s, want %s", _i, c->body,
                  gw_err_name(parsed), gw_err_name(c->parsed));
    if (f) {
        ck_assert(gw_oai_check(c->body, strlen(c->body), c->kind, GW_JCHECK_MAX_DEPTH, &fast) == 1);
        ck_assert_uint_eq(fast.model_len, strlen(c->model));
        ck_assert(memcmp(fast.model, c->model, fast.model_len) == 0);
        ck_assert_int_eq(fast.stream, c->stream);
    }
}
END_TEST

/* A large prompt: the fast path accepts it without a tree, and reads only len bytes. */
START_TEST(test_fast_large)
{
    static const char head[] = "{\"model\":\"big\",\"stream\":true,\"prompt\":\"";
    static const char tail[] = "\",\"max_tokens\":8}";
    size_t n = 100 * 1024, len = sizeof(head) - 1 + n + sizeof(tail) - 1, i;
    char *body = malloc(len);
    gw_oai_fast_t fast;
    gw_err_t parsed;

    memcpy(body, head, sizeof(head) - 1);
    for (i = 0; i < n; i++) /* ASCII, with an escape and a 2-byte character now and then */
        body[sizeof(head) - 1 + i] = (i % 997 == 5) ? '\\' : (i % 997 == 6) ? 'n' : (char)('a' + i % 26);
    memcpy(body + len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
    ck_assert_int_eq(fast_agrees(GW_OAI_COMPLETIONS, body, len, &parsed), 1);
    ck_assert(gw_oai_check(body, len, GW_OAI_COMPLETIONS, GW_JCHECK_MAX_DEPTH, &fast));
    ck_assert_uint_eq(fast.model_len, 3);
    ck_assert_int_eq(fast.stream, 1);
    /* one byte short: the closing brace is missing */
    ck_assert_int_eq(fast_agrees(GW_OAI_COMPLETIONS, body, len - 1, &parsed), 0);
    ck_assert_int_eq(parsed, GW_EBADJSON);
    /* a raw control byte deep inside the prompt */
    body[sizeof(head) - 1 + n / 2] = '\x01';
    ck_assert_int_eq(fast_agrees(GW_OAI_COMPLETIONS, body, len, &parsed), 0);
    ck_assert_int_eq(parsed, GW_EBADJSON);
    free(body);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Fast path: deterministic mutation loop against gw_oai_parse
 * ------------------------------------------------------------------------------- */

#define MUT_ROUNDS 40000
#define MUT_MAX 2048

static uint64_t rng;

static uint64_t rnd(void)
{
    return gw_test_rand(&rng);
}

typedef struct seed_body {
    gw_oai_kind_t kind;
    const char *body;
} seed_body_t;

static const seed_body_t mut_seeds[] = {
    {GW_OAI_CHAT, "{\"model\":\"qwen\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi "
                  "caf\xc3\xa9\"}],\"stream\":true,\"max_tokens\":16,\"temperature\":0.5,"
                  "\"stop\":[\"a\",\"b\"],\"n\":1,\"user\":\"u\",\"tools\":[]}"},
    {GW_OAI_CHAT, "{\"messages\":[],\"model\":\"x\",\"model\":\"y\",\"stream\":false,"
                  "\"stream\":true,\"logit_bias\":{\"1\":2},\"seed\":-5,\"top_p\":1e-3}"},
    {GW_OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":[1,2,\"x\"],\"logprobs\":3,\"echo\":"
                         "false,\"suffix\":null,\"stop\":\"s\",\"stream_options\":{}}"},
    {GW_OAI_EMBEDDINGS, "{\"model\":\"e\",\"input\":[\"a\",\"b\"],\"dimensions\":8,"
                        "\"encoding_format\":\"float\",\"stop\":[1]}"},
    {GW_OAI_OTHER, "{\"model\":\"r\",\"query\":\"q\",\"documents\":[\"d\"],\"stream\":true}"},
};
#define N_MUT_SEEDS (sizeof(mut_seeds) / sizeof(mut_seeds[0]))

/* Tokens mutations splice in: member names, types, and the grammar's corners. */
static const char *const toks[] = {
    "\"model\":\"z\",", "\"model\":7,", "\"stream\":true,", "\"stream\":null,",
    "\"stop\":[1],", "\"stop\":[\"q\"],", "\"messages\":{},", "\"prompt\":5,",
    "\"input\":null,", "\"max_tokens\":1.5,", "\"n\":2,", "\"stop_token_ids\":[1],",
    "\"mod\\u0065l\":\"w\",", "\"str\\u0065am\":true,", "\\", "\\u0000", "\\ud800",
    "\"", "{", "}", "[", "]", ":", ",", " ", "1e400", "9223372036854775808", "true", "null",
    "\xc3", "\xed\xa0\x80",
};

static size_t mutate(char *p, size_t len)
{
    size_t n = 1 + rnd() % 3, k;

    for (k = 0; k < n; k++) {
        size_t at = len ? rnd() % (len + 1) : 0, m;
        const char *t;

        switch (rnd() % 5) {
        case 0: /* set a byte */
            if (len)
                p[at % len] = (char)rnd();
            break;
        case 1: /* delete a run */
            m = at < len ? 1 + rnd() % (len - at) % 8 : 0;
            memmove(p + at, p + at + m, len - at - m);
            len -= m;
            break;
        default: /* insert a token, most often right after '{' or ',' where it fits */
            t = toks[rnd() % (sizeof(toks) / sizeof(toks[0]))];
            m = strlen(t);
            if (rnd() % 2) {
                size_t j;

                for (j = at; j < len && p[j] != '{' && p[j] != ','; j++)
                    ;
                at = j < len ? j + 1 : at;
            }
            if (len + m <= MUT_MAX) {
                memmove(p + at + m, p + at, len - at);
                memcpy(p + at, t, m);
                len += m;
            }
            break;
        }
    }
    return len;
}

/* gw_oai_parse accepted, the fast path did not: one of gw_oai_check's documented reasons? */
static int decline_explained(gw_oai_kind_t kind, const char *body, size_t len)
{
    json_t *root = NULL;
    int tok;

    if (!gw_jcheck_text(body, len, GW_JCHECK_MAX_DEPTH, NULL))
        return 1; /* the checker's own strictness, tested in check_jcheck */
    if (memchr(body, '\\', len) != NULL)
        return 1; /* an escaped model name (or a harmless escape: not told apart here) */
    ck_assert_int_eq(gw_oai_parse(body, len, kind, &root, NULL), GW_OK);
    tok = (kind == GW_OAI_CHAT || kind == GW_OAI_COMPLETIONS) &&
          (json_object_get(root, "stop_token_ids") || json_object_get(root, "return_token_ids"));
    json_decref(root);
    return tok;
}

START_TEST(test_fast_mutations)
{
    char *p = malloc(MUT_MAX);
    size_t round, fast = 0, ok = 0;

    rng = 0x2545f4914f6cdd1dull;
    for (round = 0; round < MUT_ROUNDS; round++) {
        const seed_body_t *s = &mut_seeds[round % N_MUT_SEEDS];
        size_t len = strlen(s->body);
        gw_err_t parsed;
        int f;

        memcpy(p, s->body, len);
        len = mutate(p, len);
        f = fast_agrees(s->kind, p, len, &parsed);
        fast += (size_t)f;
        ok += parsed == GW_OK;
        if (!f && parsed == GW_OK)
            ck_assert_msg(decline_explained(s->kind, p, len), "declined: %.*s", (int)len, p);
    }
    free(p);
    /* both verdicts are exercised */
    ck_assert_msg(fast > MUT_ROUNDS / 20 && ok < MUT_ROUNDS, "fast %zu, parse ok %zu of %d",
                  fast, ok, MUT_ROUNDS);
}
END_TEST

/* The syntax error message gives line, column and byte offset from jansson. */
START_TEST(test_syntax_error_position)
{
    static const char body[] = "{\n  \"model\": \"m\",\n  \"messages\": [\n}";
    gw_errbuf_t err = {{0}, {0}};
    json_t *root = (json_t *)1;
    json_error_t je;
    char want[GW_ERRBUF_LEN];

    ck_assert_int_eq(gw_oai_parse(body, sizeof(body) - 1, GW_OAI_CHAT, &root, &err),
                     GW_EBADJSON);
    ck_assert_ptr_null(root);
    ck_assert_str_eq(err.param, "");
    ck_assert_ptr_null(json_loadb(body, sizeof(body) - 1, JSON_DECODE_ANY, &je));
    ck_assert_int_eq(je.line, 4);
    ck_assert_int_eq(je.column, 1);
    snprintf(want, sizeof(want), "invalid JSON in request body at line 4 column 1 (byte %d): %s",
             je.position, je.text);
    ck_assert_str_eq(err.msg, want);

    ck_assert_int_eq(gw_oai_parse("{\"model\":}", 10, GW_OAI_CHAT, &root, &err), GW_EBADJSON);
    ck_assert_msg(strncmp(err.msg, "invalid JSON in request body at line 1 column 10 (byte 10): ",
                          60) == 0,
                  "%s", err.msg);
    ck_assert_int_eq(gw_oai_parse("{} x", 4, GW_OAI_CHAT, &root, &err), GW_EBADJSON);
    ck_assert_msg(strstr(err.msg, "line 1 column") != NULL, "%s", err.msg);
}
END_TEST

/* The fast path's depth limit is gw_json_depth_ok's: h_oai scans a good body once. */
START_TEST(test_fast_depth_limit)
{
    static const char head[] = "{\"model\":\"m\",\"messages\":[],\"x\":";
    char body[256];
    gw_oai_fast_t fast;
    size_t n, d;

    for (d = 0; d < 12; d++) {
        /* the top-level object plus d nested arrays: 1 + d levels */
        n = (size_t)snprintf(body, sizeof(body), "%s", head);
        for (size_t k = 0; k < d; k++)
            body[n++] = '[';
        body[n++] = '1';
        for (size_t k = 0; k < d; k++)
            body[n++] = ']';
        body[n++] = '}';
        ck_assert_int_eq(gw_oai_check(body, n, GW_OAI_CHAT, 6, &fast),
                         gw_json_depth_ok(body, n, 6));
        ck_assert_int_eq(gw_oai_check(body, n, GW_OAI_CHAT, 6, &fast), 1 + d <= 6);
    }
}
END_TEST

/* A raw NUL byte is never JSON. jansson 2.14 skips one right after a number or a literal
 * ("[5\0]" loads), so gw_oai_parse refuses it itself, and the fast path declines it. */
START_TEST(test_nul_byte_refused)
{
    static const char after_number[] = "{\"model\":\"m\",\"messages\":[],\n\"seed\":5\0}";
    static const char after_literal[] = "{\"model\":\"m\",\"messages\":[],\"stream\":true\0}";
    gw_errbuf_t err = {{0}, {0}};
    gw_oai_fast_t fast;
    json_t *root = (json_t *)1;

    /* the leniency this guards against */
    root = json_loadb(after_number, sizeof(after_number) - 1, JSON_DECODE_ANY, NULL);
    ck_assert_ptr_nonnull(root);
    json_decref(root);

    root = (json_t *)1;
    ck_assert_int_eq(gw_oai_parse(after_number, sizeof(after_number) - 1, GW_OAI_CHAT, &root,
                                  &err),
                     GW_EBADJSON);
    ck_assert_ptr_null(root);
    ck_assert_str_eq(err.param, "");
    ck_assert_str_eq(err.msg, "invalid JSON in request body at line 2 column 8 (byte 36): NUL byte");
    ck_assert_int_eq(gw_oai_check(after_number, sizeof(after_number) - 1, GW_OAI_CHAT, GW_JCHECK_MAX_DEPTH, &fast), 0);

    ck_assert_int_eq(gw_oai_parse(after_literal, sizeof(after_literal) - 1, GW_OAI_CHAT, &root,
                                  &err),
                     GW_EBADJSON);
    ck_assert_str_eq(err.msg,
                     "invalid JSON in request body at line 1 column 40 (byte 40): NUL byte");
    ck_assert_int_eq(gw_oai_check(after_literal, sizeof(after_literal) - 1, GW_OAI_CHAT, GW_JCHECK_MAX_DEPTH, &fast),
                     0);
}
END_TEST

/* Only len bytes are read: a body need not be NUL-terminated. */
START_TEST(test_length_respected)
{
    static const char buf[] = "{\"model\":\"m\",\"messages\":[]}garbage";
    gw_errbuf_t err = {{0}, {0}};
    json_t *root = NULL;

    ck_assert_int_eq(gw_oai_parse(buf, 27, GW_OAI_CHAT, &root, &err), GW_OK);
    json_decref(root);
    ck_assert_int_eq(gw_oai_parse(buf, 26, GW_OAI_CHAT, &root, &err), GW_EBADJSON);
    ck_assert_ptr_null(root);
    ck_assert_int_eq(gw_oai_parse(buf, 0, GW_OAI_CHAT, &root, &err), GW_EBADJSON);
    ck_assert_str_eq(err.msg, "request body is empty: expected a JSON object");
}
END_TEST

/* A NULL errbuf is allowed: the code alone comes back. */
START_TEST(test_null_errbuf)
{
    json_t *root = NULL;

    ck_assert_int_eq(gw_oai_parse("{}", 2, GW_OAI_CHAT, &root, NULL), GW_EBADREQ);
    ck_assert_int_eq(gw_oai_parse("{", 1, GW_OAI_CHAT, &root, NULL), GW_EBADJSON);
    ck_assert_int_eq(gw_oai_parse("", 0, GW_OAI_CHAT, &root, NULL), GW_EBADJSON);
    ck_assert_ptr_null(root);
}
END_TEST

static Suite *request_suite(void)
{
    Suite *s = suite_create("request");
    TCase *tc = tcase_create("parse");

    tcase_add_loop_test(tc, test_rejected, 0, (int)N_CASES);
    tcase_add_loop_test(tc, test_accepted, 0, (int)N_OK);
    tcase_add_test(tc, test_syntax_error_position);
    tcase_add_test(tc, test_fast_depth_limit);
    tcase_add_test(tc, test_nul_byte_refused);
    tcase_add_test(tc, test_length_respected);
    tcase_add_test(tc, test_null_errbuf);
    suite_add_tcase(s, tc);

    tc = tcase_create("fast");
    tcase_set_timeout(tc, 300); /* sanitizer builds are slow; CK_FORK=no has no timeout */
    tcase_add_loop_test(tc, test_fast, 0, (int)N_FAST);
    tcase_add_test(tc, test_fast_large);
    tcase_add_test(tc, test_fast_mutations);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(request_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
