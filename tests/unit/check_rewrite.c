/*
 * check_rewrite.c - unit tests for the model-name rewrite (openai/rewrite.c).
 *
 * gw_oai_set_model must change the top-level "model" string and nothing else: floats
 * such as 0.843 and the key order come out byte for byte, the new name is written as
 * an escaped JSON string, nested "model" keys stay, and input that is not an object
 * (or has no string "model") is copied unchanged. Then the ceiling.
 */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "openai/rewrite.h"

/* Rewrites src with model (mlen bytes) and compares the output with want. */
static void set_model_eq(const char *src, const char *model, size_t mlen, int want_rc,
                         const char *want)
{
    gw_buf_t out;
    int rc;

    gw_buf_init(&out, 1 << 20);
    rc = gw_oai_set_model(src, strlen(src), model, mlen, &out);
    ck_assert_msg(rc == want_rc, "%s: rc %d, want %d", src, rc, want_rc);
    ck_assert_msg(out.len == strlen(want) && memcmp(out.ptr, want, out.len) == 0,
                  "\n  src:  %s\n  got:  %.*s\n  want: %s", src, (int)out.len,
                  out.ptr ? out.ptr : "", want);
    gw_buf_free(&out);
}

#define M(s) s, sizeof(s) - 1

START_TEST(test_bytes_preserved)
{
    /* a real llama-server chunk: the only change is the model value */
    set_model_eq(
        "{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\" faces\"},"
        "\"logprobs\":{\"content\":[{\"id\":17240,\"token\":\" faces\",\"bytes\":[32,102],"
        "\"logprob\":-1.5303703546524048,\"top_logprobs\":[]}]}}],\"created\":1795919497,"
        "\"id\":\"chatcmpl-x\",\"model\":\"models/tiny-llama.gguf\",\"system_fingerprint\":"
        "\"b10587\",\"object\":\"chat.completion.chunk\",\"timings\":{\"prompt_ms\":0.843,"
        "\"predicted_per_second\":1e3}}",
        M("qwen"), 1,
        "{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\" faces\"},"
        "\"logprobs\":{\"content\":[{\"id\":17240,\"token\":\" faces\",\"bytes\":[32,102],"
        "\"logprob\":-1.5303703546524048,\"top_logprobs\":[]}]}}],\"created\":1795919497,"
        "\"id\":\"chatcmpl-x\",\"model\":\"qwen\",\"system_fingerprint\":"
        "\"b10587\",\"object\":\"chat.completion.chunk\",\"timings\":{\"prompt_ms\":0.843,"
        "\"predicted_per_second\":1e3}}");
    /* first, last, whitespace around */
    set_model_eq("{\"model\":\"a\",\"x\":0.10}", M("b"), 1, "{\"model\":\"b\",\"x\":0.10}");
    set_model_eq("{\"x\":0.10,\"model\":\"a\"}", M("b"), 1, "{\"x\":0.10,\"model\":\"b\"}");
    set_model_eq(" {\n  \"model\" : \"a\" ,\n  \"x\" : 1\n}\n", M("longer-name"), 1,
                 " {\n  \"model\" : \"longer-name\" ,\n  \"x\" : 1\n}\n");
    set_model_eq("{\"model\":\"\"}", M("b"), 1, "{\"model\":\"b\"}");
    set_model_eq("{\"model\":\"a\\\"b\"}", M("c"), 1, "{\"model\":\"c\"}");
    set_model_eq("{\"model\":\"a\"}", M(""), 1, "{\"model\":\"\"}");
}
END_TEST

START_TEST(test_name_escaped)
{
    gw_buf_t out;
    json_t *j;
    static const char name[] = "we\"ird\\na\nme\x01\t/\xC3\xA9";

    set_model_eq("{\"model\":\"a\"}", M(name), 1,
                 "{\"model\":\"we\\\"ird\\\\na\\nme\\u0001\\t/\xC3\xA9\"}");
    /* and it parses back to the same bytes */
    gw_buf_init(&out, 1024);
    ck_assert_int_eq(gw_oai_set_model(M("{\"model\":\"a\",\"n\":1}"), M(name), &out), 1);
    j = json_loadb(out.ptr, out.len, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "model")), name);
    json_decref(j);
    gw_buf_free(&out);
}
END_TEST

START_TEST(test_nested_model_untouched)
{
    set_model_eq("{\"a\":{\"model\":\"x\"},\"model\":\"y\",\"b\":[{\"model\":\"z\"}]}", M("m"), 1,
                 "{\"a\":{\"model\":\"x\"},\"model\":\"m\",\"b\":[{\"model\":\"z\"}]}");
    set_model_eq("{\"a\":{\"model\":\"x\"}}", M("m"), 0, "{\"a\":{\"model\":\"x\"}}");
    set_model_eq("{\"data\":[{\"id\":\"x\",\"model\":\"y\"}]}", M("m"), 0,
                 "{\"data\":[{\"id\":\"x\",\"model\":\"y\"}]}");
    set_model_eq("{\"s\":\"\\\"model\\\":\\\"x\\\"\"}", M("m"), 0,
                 "{\"s\":\"\\\"model\\\":\\\"x\\\"\"}");
}
END_TEST

START_TEST(test_copied_unchanged)
{
    static const char *const same[] = {
        "",
        "[DONE]",
        "[{\"model\":\"x\"}]",
        "\"model\"",
        "42",
        "{}",
        "{\"model\":null}",
        "{\"model\":7}",
        "{\"model\":[\"x\"]}",
        "{\"model\":{\"name\":\"x\"}}",
        "{\"modelx\":\"x\"}",
        "{\"mode\":\"x\"}",
        "{\"error\":{\"code\":500,\"message\":\"boom\"}}",
        NULL,
    };
    size_t i;

    for (i = 0; same[i]; i++)
        set_model_eq(same[i], M("m"), 0, same[i]);
    /* a truncated object still has its model member spliced: the scan stops there */
    set_model_eq("{\"model\":\"x\"", M("m"), 1, "{\"model\":\"m\"");
}
END_TEST

START_TEST(test_appends_to_existing_content)
{
    gw_buf_t out;

    gw_buf_init(&out, 1024);
    gw_buf_adds(&out, "data: ");
    ck_assert_int_eq(gw_oai_set_model(M("{\"model\":\"a\"}"), M("b"), &out), 1);
    ck_assert_int_eq(gw_oai_set_model(M("[1]"), M("b"), &out), 0);
    ck_assert_str_eq(out.ptr, "data: {\"model\":\"b\"}[1]");
    gw_buf_free(&out);
}
END_TEST

START_TEST(test_ceiling)
{
    gw_buf_t out;

    gw_buf_init(&out, 12);
    ck_assert_int_eq(gw_oai_set_model(M("{\"model\":\"a\"}"), M("bc"), &out), -1);
    gw_buf_free(&out);
    gw_buf_init(&out, 14);
    ck_assert_int_eq(gw_oai_set_model(M("{\"model\":\"a\"}"), M("bc"), &out), 1);
    ck_assert_str_eq(out.ptr, "{\"model\":\"bc\"}");
    gw_buf_free(&out);
    gw_buf_init(&out, 3);
    ck_assert_int_eq(gw_oai_set_model(M("[1,2]"), M("b"), &out), -1);
    gw_buf_free(&out);
}
END_TEST

/* The SSE event form: the same splice, plus whether a top-level "error" member is there,
 * in one walk; model NULL copies. */
START_TEST(test_event_error_flag)
{
    static const struct {
        const char *in, *model, *want;
        int rc, error;
    } t[] = {
        {"{\"model\":\"a\",\"x\":1}", "b", "{\"model\":\"b\",\"x\":1}", 1, 0},
        {"{\"error\":{\"code\":500},\"model\":\"a\"}", "b", "{\"error\":{\"code\":500},\"model\":\"b\"}", 1, 1},
        {"{\"model\":\"a\",\"error\":\"x\"}", NULL, "{\"model\":\"a\",\"error\":\"x\"}", 0, 1},
        {"{\"errors\":1,\"mode\":\"a\",\"modelx\":\"a\"}", "b", "{\"errors\":1,\"mode\":\"a\",\"modelx\":\"a\"}", 0, 0},
        {"{\"x\":{\"error\":1,\"model\":\"a\"}}", "b", "{\"x\":{\"error\":1,\"model\":\"a\"}}", 0, 0},
        {"{\"model\":1,\"model\":\"a\"}", "b", "{\"model\":1,\"model\":\"a\"}", 0, 0},
        /* as gw_json_member: members before a malformed byte count */
        {"{\"error\":1,\"model\":\"a\",\"x\":}", "b", "{\"error\":1,\"model\":\"b\",\"x\":}", 1, 1},
        {"[1]", "b", "[1]", 0, 0},
    };
    gw_buf_t out;
    size_t k;

    for (k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
        int err = -1;

        gw_buf_init(&out, 1024);
        ck_assert_int_eq(gw_oai_rewrite(t[k].in, strlen(t[k].in), t[k].model,
                                        t[k].model ? strlen(t[k].model) : 0, &out, &err),
                         t[k].rc);
        ck_assert_int_eq(err, t[k].error);
        ck_assert_uint_eq(out.len, strlen(t[k].want));
        ck_assert_mem_eq(out.ptr, t[k].want, out.len);
        gw_buf_free(&out);
    }
}
END_TEST

static Suite *rewrite_suite(void)
{
    Suite *s = suite_create("rewrite");
    TCase *tc = tcase_create("set_model");

    tcase_add_test(tc, test_bytes_preserved);
    tcase_add_test(tc, test_name_escaped);
    tcase_add_test(tc, test_nested_model_untouched);
    tcase_add_test(tc, test_copied_unchanged);
    tcase_add_test(tc, test_appends_to_existing_content);
    tcase_add_test(tc, test_ceiling);
    tcase_add_test(tc, test_event_error_flag);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rewrite_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
