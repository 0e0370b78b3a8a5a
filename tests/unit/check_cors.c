/*
 * check_cors.c - unit tests for the CORS policy (http/cors.c): nothing allowed by
 * default, exact (case-insensitive) origin matching, "*", hostile Origin values, and
 * the headers written on preflight and actual responses (read back from real MHD
 * response objects; no daemon needed).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "http/cors.h"

static gw_conf_t *conf_with(const char *cors)
{
    char json[1024];
    gw_conf_t *c;
    gw_errbuf_t err;

    snprintf(json, sizeof(json), "{\"models\": {\"q\": {\"upstream\": \"http://h\"}}%s%s}",
             cors ? ", \"cors\": " : "", cors ? cors : "");
    memset(&err, 0, sizeof(err));
    ck_assert_msg(gw_conf_load_text(json, strlen(json), &c, &err) == GW_OK, "%s", err.msg);
    return c;
}

START_TEST(test_default_nothing)
{
    gw_conf_t *conf = conf_with(NULL);
    gw_cors_t *c = gw_cors_new(conf);
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"",
                                                             MHD_RESPMEM_PERSISTENT);

    ck_assert_int_eq(gw_cors_enabled(c), 0);
    ck_assert_int_eq(gw_cors_allowed(c, "http://localhost:3000"), 0);
    ck_assert_int_eq(gw_cors_allowed(c, NULL), 0);
    gw_cors_add_actual(c, r, "http://localhost:3000", 0);
    ck_assert_ptr_null(MHD_get_response_header(r, "Access-Control-Allow-Origin"));
    ck_assert_ptr_null(MHD_get_response_header(r, "Vary")); /* CORS off: untouched */
    MHD_destroy_response(r);
    r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    gw_cors_add_preflight(c, r, "http://localhost:3000", 0, "authorization");
    ck_assert_ptr_null(MHD_get_response_header(r, "Access-Control-Allow-Origin"));
    ck_assert_ptr_null(MHD_get_response_header(r, "Access-Control-Allow-Methods"));
    MHD_destroy_response(r);
    gw_cors_free(c);
    gw_conf_free(conf);
}
END_TEST

START_TEST(test_list)
{
    gw_conf_t *conf = conf_with("{\"origins\": [\"http://webui.lan:3000\", \"https://a.example\"],"
                                " \"max_age_s\": 42}");
    gw_cors_t *c = gw_cors_new(conf);
    struct MHD_Response *r;

    ck_assert_int_eq(gw_cors_enabled(c), 1);
    ck_assert_int_eq(gw_cors_allowed(c, "http://webui.lan:3000"), 1);
    ck_assert_int_eq(gw_cors_allowed(c, "HTTP://WEBUI.LAN:3000"), 1);
    ck_assert_int_eq(gw_cors_allowed(c, "https://a.example"), 1);
    ck_assert_int_eq(gw_cors_allowed(c, "http://webui.lan"), 0);
    ck_assert_int_eq(gw_cors_allowed(c, "http://webui.lan:30000"), 0);
    ck_assert_int_eq(gw_cors_allowed(c, "http://webui.lan:3000.evil.example"), 0);
    ck_assert_int_eq(gw_cors_allowed(c, "https://a.example.evil"), 0);
    ck_assert_int_eq(gw_cors_allowed(c, "null"), 0);
    ck_assert_int_eq(gw_cors_allowed(c, ""), 0);

    /* an allowed actual response */
    r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    gw_cors_add_actual(c, r, "http://webui.lan:3000", 1);
    ck_assert_str_eq(MHD_get_response_header(r, "Access-Control-Allow-Origin"),
                     "http://webui.lan:3000");
    ck_assert_str_eq(MHD_get_response_header(r, "Vary"), "Origin");
    ck_assert_str_eq(MHD_get_response_header(r, "Access-Control-Expose-Headers"),
                     "X-Request-Id, Retry-After");
    MHD_destroy_response(r);

    /* a refused one still varies by origin */
    r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    gw_cors_add_actual(c, r, "http://evil.example", 0);
    ck_assert_ptr_null(MHD_get_response_header(r, "Access-Control-Allow-Origin"));
    ck_assert_str_eq(MHD_get_response_header(r, "Vary"), "Origin");
    MHD_destroy_response(r);

    /* preflight: the requested headers are echoed when they are a list of names */
    r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    gw_cors_add_preflight(c, r, "https://a.example", 1, "authorization, content-type, x-stainless-os");
    ck_assert_str_eq(MHD_get_response_header(r, "Access-Control-Allow-Origin"), "https://a.example");
    ck_assert_str_eq(MHD_get_response_header(r, "Access-Control-Allow-Methods"),
                     "GET, HEAD, POST, OPTIONS");
    ck_assert_str_eq(MHD_get_response_header(r, "Access-Control-Allow-Headers"),
                     "authorization, content-type, x-stainless-os");
    ck_assert_str_eq(MHD_get_response_header(r, "Access-Control-Max-Age"), "42");
    MHD_destroy_response(r);

    /* ... and replaced by the gateway's own list when they are not */
    r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    gw_cors_add_preflight(c, r, "https://a.example", 1, "x-a\r\nSet-Cookie: a=b");
    ck_assert_str_eq(MHD_get_response_header(r, "Access-Control-Allow-Headers"),
                     "Authorization, Content-Type, X-Api-Key, X-Request-Id");
    MHD_destroy_response(r);
    r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    gw_cors_add_preflight(c, r, "https://a.example", 1, NULL);
    ck_assert_str_eq(MHD_get_response_header(r, "Access-Control-Allow-Headers"),
                     "Authorization, Content-Type, X-Api-Key, X-Request-Id");
    MHD_destroy_response(r);
    gw_cors_free(c);
    gw_conf_free(conf);
}
END_TEST

START_TEST(test_any)
{
    gw_conf_t *conf = conf_with("{\"origins\": [\"*\"]}");
    gw_cors_t *c = gw_cors_new(conf);

    ck_assert_int_eq(gw_cors_allowed(c, "http://anything.example:1234"), 1);
    ck_assert_int_eq(gw_cors_allowed(c, NULL), 0);
    /* never echo something that could break the header or smuggle another one */
    ck_assert_int_eq(gw_cors_allowed(c, "http://a\r\nX-Evil: 1"), 0);
    ck_assert_int_eq(gw_cors_allowed(c, "http://a b"), 0);
    ck_assert_int_eq(gw_cors_allowed(c, "http://a,http://b"), 0);
    ck_assert_int_eq(gw_cors_allowed(c, "http://caf\xc3\xa9"), 0);
    gw_cors_free(c);
    gw_conf_free(conf);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cors");
    TCase *tc = tcase_create("cors");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_default_nothing);
    tcase_add_test(tc, test_list);
    tcase_add_test(tc, test_any);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
