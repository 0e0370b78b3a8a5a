/*
 * check_request.c - unit tests for OpenAI request validation (openai/request.c).
 *
 * Table-driven: for every endpoint and every rule, a value of a wrong type must give
 * GW_EPARAM with the exact message and `param`; null is accepted where the field is
 * optional; missing required fields (model, messages, prompt, input) give GW_EBADREQ;
 * an empty body and a syntax error give GW_EBADJSON, the latter with line and column;
 * a body that is not an object; and `stop` arrays holding a non-string. Accepted bodies
 * come back parsed in *root; rejected ones leave *root NULL (ASan checks the rest).
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openai/request.h"

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
    json_decref(root);
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
    tcase_add_test(tc, test_length_respected);
    tcase_add_test(tc, test_null_errbuf);
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
