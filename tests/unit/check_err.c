/*
 * check_err.c - unit tests for the result-code table (core/err.c): every code has an
 * error status, a known OpenAI type and a code string, the table agrees with itself,
 * out-of-range values are safe, and gw_errf fills and truncates its buffer.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* The OpenAI error types a client may see. */
static const char *const openai_types[] = {
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
    "rate_limit_error",      "server_error",         "api_error",        NULL,
};

static int known_type(const char *t)
{
    size_t i;

    for (i = 0; openai_types[i]; i++)
        if (strcmp(t, openai_types[i]) == 0)
            return 1;
    return 0;
}

START_TEST(test_ok)
{
    ck_assert_int_eq(GW_OK, 0);
    ck_assert_int_eq(gw_err_status(GW_OK), 200);
    ck_assert_str_eq(gw_err_type(GW_OK), "");
    ck_assert_str_eq(gw_err_code(GW_OK), "");
    ck_assert_str_eq(gw_err_name(GW_OK), "OK");
}
END_TEST

/* Looped over every code but GW_OK. */
START_TEST(test_every_code)
{
    gw_err_t e = (gw_err_t)_i;
    int status = gw_err_status(e);
    const char *type = gw_err_type(e), *code = gw_err_code(e), *name = gw_err_name(e);

    ck_assert_msg(status >= 400 && status <= 599, "%s: status %d", name, status);
    ck_assert_ptr_nonnull(type);
    ck_assert_ptr_nonnull(code);
    ck_assert_ptr_nonnull(name);
    ck_assert_msg(name[0] == 'E', "code %d: name \"%s\"", (int)e, name);
    ck_assert_msg(known_type(type), "%s: unknown type \"%s\"", name, type);
    ck_assert_msg(code[0] != '\0', "%s: empty code", name);
    ck_assert_msg(strspn(code, "abcdefghijklmnopqrstuvwxyz_") == strlen(code),
                  "%s: code \"%s\" is not snake_case", name, code);
    /* Client errors are 4xx and server errors 5xx. */
    if (strcmp(type, "server_error") == 0 || strcmp(type, "api_error") == 0)
        ck_assert_msg(status >= 500, "%s: %s with %d", name, type, status);
    else
        ck_assert_msg(status < 500, "%s: %s with %d", name, type, status);
}
END_TEST

START_TEST(test_unique)
{
    int a, b;

    for (a = 1; a < GW_ERR__COUNT; a++) {
        for (b = a + 1; b < GW_ERR__COUNT; b++) {
            ck_assert_str_ne(gw_err_name((gw_err_t)a), gw_err_name((gw_err_t)b));
            ck_assert_str_ne(gw_err_code((gw_err_t)a), gw_err_code((gw_err_t)b));
        }
    }
}
END_TEST

START_TEST(test_spot_checks)
{
    ck_assert_int_eq(gw_err_status(GW_EBADJSON), 400);
    ck_assert_int_eq(gw_err_status(GW_EAUTH), 401);
    ck_assert_str_eq(gw_err_type(GW_EAUTH), "authentication_error");
    ck_assert_int_eq(gw_err_status(GW_ENOMODEL), 404);
    ck_assert_str_eq(gw_err_code(GW_ENOMODEL), "model_not_found");
    ck_assert_int_eq(gw_err_status(GW_ETOOBIG), 413);
    ck_assert_str_eq(gw_err_name(GW_ETOOBIG), "ETOOBIG");
    ck_assert_int_eq(gw_err_status(GW_EUPSTREAM), 502);
    ck_assert_int_eq(gw_err_status(GW_EBUSY), 503);
    ck_assert_int_eq(gw_err_status(GW_ETIMEOUT), 504);
}
END_TEST

START_TEST(test_out_of_range)
{
    static const int bad[] = {-1, GW_ERR__COUNT, GW_ERR__COUNT + 100};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gw_err_t e = (gw_err_t)bad[i];

        ck_assert_int_eq(gw_err_status(e), 500);
        ck_assert_str_eq(gw_err_type(e), "server_error");
        ck_assert_str_eq(gw_err_code(e), "internal_error");
        ck_assert_str_eq(gw_err_name(e), "?");
    }
}
END_TEST

START_TEST(test_errf)
{
    gw_errbuf_t e;

    memset(&e, 'x', sizeof(e));
    ck_assert_int_eq(gw_errf(&e, GW_EPARAM, "temperature", "%s: expected %s", "temperature",
                             "a number"),
                     GW_EPARAM);
    ck_assert_str_eq(e.msg, "temperature: expected a number");
    ck_assert_str_eq(e.param, "temperature");

    ck_assert_int_eq(gw_errf(&e, GW_EBADJSON, NULL, "line %d", 3), GW_EBADJSON);
    ck_assert_str_eq(e.msg, "line 3");
    ck_assert_str_eq(e.param, "");

    /* No buffer: just the code. */
    ck_assert_int_eq(gw_errf(NULL, GW_EAUTH, "x", "ignored %d", 1), GW_EAUTH);
}
END_TEST

START_TEST(test_errf_truncates)
{
    gw_errbuf_t e;
    char long_msg[2 * GW_ERRBUF_LEN], long_param[300];

    memset(long_msg, 'm', sizeof(long_msg) - 1);
    long_msg[sizeof(long_msg) - 1] = '\0';
    memset(long_param, 'p', sizeof(long_param) - 1);
    long_param[sizeof(long_param) - 1] = '\0';
    gw_errf(&e, GW_EPARAM, long_param, "%s", long_msg);
    ck_assert_uint_eq(strlen(e.msg), GW_ERRBUF_LEN - 1);
    ck_assert_uint_eq(strlen(e.param), sizeof(e.param) - 1);
}
END_TEST

static Suite *err_suite(void)
{
    Suite *s = suite_create("err");
    TCase *tc = tcase_create("table");

    tcase_add_test(tc, test_ok);
    tcase_add_loop_test(tc, test_every_code, 1, GW_ERR__COUNT);
    tcase_add_test(tc, test_unique);
    tcase_add_test(tc, test_spot_checks);
    tcase_add_test(tc, test_out_of_range);
    suite_add_tcase(s, tc);

    tc = tcase_create("errbuf");
    tcase_add_test(tc, test_errf);
    tcase_add_test(tc, test_errf_truncates);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(err_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
