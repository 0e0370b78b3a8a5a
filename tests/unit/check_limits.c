/*
 * check_limits.c - unit tests for the small pure helpers behind the request limits
 * and hostile-input handling: the JSON depth guard (core/jspan.c gw_json_depth_ok),
 * the log-line escaper (core/log.c gw_log_safe), UTF-8 repair for error messages
 * (core/text.c) and the /upstream dot-segment check (http/guard.c).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jspan.h"
#include "core/log.h"
#include "core/text.h"
#include "http/guard.h"

static int depth_ok(const char *s, unsigned max)
{
    return gw_json_depth_ok(s, strlen(s), max);
}

START_TEST(test_depth)
{
    char *deep;
    size_t i, n = 100000;

    ck_assert_int_eq(depth_ok("", 1), 1);
    ck_assert_int_eq(depth_ok("1", 0), 1);
    ck_assert_int_eq(depth_ok("{}", 0), 0);
    ck_assert_int_eq(depth_ok("{}", 1), 1);
    ck_assert_int_eq(depth_ok("[[1],[2],{\"a\":[3]}]", 3), 1);
    ck_assert_int_eq(depth_ok("[[1],[2],{\"a\":[3]}]", 2), 0);
    /* brackets inside strings do not count, escaped quotes do not end strings */
    ck_assert_int_eq(depth_ok("{\"a\":\"[[[[[[{{{{\"}", 1), 1);
    ck_assert_int_eq(depth_ok("{\"a\":\"\\\"[[[[\"}", 1), 1);
    ck_assert_int_eq(depth_ok("{\"a\\\\\":[[1]]}", 2), 0); /* "a\\" ends the key */
    /* unbalanced closers cannot lower the count below zero and hide later opens */
    ck_assert_int_eq(depth_ok("]]]]]]]][[[", 2), 0);
    /* a huge nest is rejected in one pass without recursion */
    deep = malloc(n + 1);
    for (i = 0; i < n; i++)
        deep[i] = i % 2 ? '{' : '[';
    deep[n] = '\0';
    ck_assert_int_eq(gw_json_depth_ok(deep, n, 128), 0);
    ck_assert_int_eq(gw_json_depth_ok(deep, 128, 128), 1);
    ck_assert_int_eq(gw_json_depth_ok(deep, 129, 128), 0);
    free(deep);
    /* the length is honoured */
    ck_assert_int_eq(gw_json_depth_ok("[[[", 1, 1), 1);
    /* NUL bytes are just bytes */
    ck_assert_int_eq(gw_json_depth_ok("[\0[\0[", 5, 2), 0);
}
END_TEST

/* Regression (fuzz_request): a NUL byte inside a container made gw_json_skip spin. */
START_TEST(test_json_skip_nul)
{
    static const char in[] = "{\"model\":\"m\",\"messages\":[[{\"a\":[{}]}]\0\0?]]}";
    gw_jspan_t sp;

    ck_assert_uint_eq(gw_json_skip("[\0]", 3, 0), (size_t)-1); /* malformed, and it returns */
    ck_assert_uint_eq(gw_json_skip("[\0", 2, 0), (size_t)-1);
    ck_assert_uint_eq(gw_json_skip("[1\0]", 4, 0), (size_t)-1);
    ck_assert_uint_eq(gw_json_skip("[1]", 3, 0), 3);
    ck_assert_int_eq(gw_json_member(in, sizeof(in) - 1, 0, "model", &sp), 1);
    ck_assert_int_eq(gw_json_member(in, sizeof(in) - 1, 0, "nope", &sp), -1);
}
END_TEST

static const char *fixed(const char *in)
{
    static char buf[64];

    snprintf(buf, sizeof(buf), "%s", in);
    gw_text_utf8_fix(buf);
    return buf;
}

START_TEST(test_utf8_fix)
{
    ck_assert_str_eq(fixed("plain /v1/models"), "plain /v1/models");
    ck_assert_str_eq(fixed("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80"),
                     "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80");
    ck_assert_str_eq(fixed("\xff\xfe"), "??");
    ck_assert_str_eq(fixed("a\xc3"), "a?");              /* truncated */
    ck_assert_str_eq(fixed("\xc0\xaf"), "??");          /* overlong '/' */
    ck_assert_str_eq(fixed("\xe0\x80\xaf"), "???");    /* overlong, 3 bytes */
    ck_assert_str_eq(fixed("\xed\xa0\x80"), "???");    /* surrogate U+D800 */
    ck_assert_str_eq(fixed("\xf4\x90\x80\x80"), "????"); /* above U+10FFFF */
    ck_assert_str_eq(fixed("\xe6\x97x"), "??x");
    ck_assert_uint_eq(gw_text_utf8_fix((char[]){"\x80\x80ok"}), 2);
}
END_TEST

START_TEST(test_dot_segments)
{
#define DOT(s) gw_guard_dot_segment(s, strlen(s))
    ck_assert_int_eq(DOT("/props"), 0);
    ck_assert_int_eq(DOT("/v1/chat/completions"), 0);
    ck_assert_int_eq(DOT("/a..b/c.d/...x/.hidden/"), 0);
    ck_assert_int_eq(DOT("/..."), 0);
    ck_assert_int_eq(DOT("/x?a=/../"), 0); /* the query is not a path */
    ck_assert_int_eq(DOT("/.."), 1);
    ck_assert_int_eq(DOT("/../etc/passwd"), 1);
    ck_assert_int_eq(DOT("/a/./b"), 1);
    ck_assert_int_eq(DOT("/a/."), 1);
    ck_assert_int_eq(DOT("/a/%2e%2E/b"), 1);
    ck_assert_int_eq(DOT("/a/.%2e"), 1);
    ck_assert_int_eq(DOT("/a/%2e"), 1);
    ck_assert_int_eq(DOT("/a/%2e%2"), 0);
    ck_assert_int_eq(DOT("//..//"), 1);
#undef DOT
}
END_TEST

START_TEST(test_log_safe)
{
    char out[32];

    ck_assert_str_eq(gw_log_safe(out, sizeof(out), "/v1/models", 10), "/v1/models");
    ck_assert_str_eq(gw_log_safe(out, sizeof(out), "a\nb", 3), "a\\x0ab");
    ck_assert_str_eq(gw_log_safe(out, sizeof(out), "q\"x\\", 4), "q\\x22x\\x5c");
    ck_assert_str_eq(gw_log_safe(out, sizeof(out), "\x1b[31m", 5), "\\x1b[31m");
    ck_assert_str_eq(gw_log_safe(out, sizeof(out), "caf\xc3\xa9", 5), "caf\\xc3\\xa9");
    ck_assert_str_eq(gw_log_safe(out, sizeof(out), "a\0b", 3), "a\\x00b");
    /* exactly fits: 31 characters */
    ck_assert_str_eq(gw_log_safe(out, sizeof(out), "0123456789012345678901234567890", 31),
                     "0123456789012345678901234567890");
    /* does not fit: cut, with "..." */
    ck_assert_str_eq(gw_log_safe(out, sizeof(out), "01234567890123456789012345678901", 32),
                     "0123456789012345678901234567...");
    ck_assert_str_eq(gw_log_safe(out, 8, "\n\n\n", 3), "\\x0a...");
    ck_assert_str_eq(gw_log_safe(out, 1, "abc", 3), "");
    ck_assert_str_eq(gw_log_safe(out, sizeof(out), "", 0), "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("limits");
    TCase *tc = tcase_create("limits");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_depth);
    tcase_add_test(tc, test_json_skip_nul);
    tcase_add_test(tc, test_log_safe);
    tcase_add_test(tc, test_utf8_fix);
    tcase_add_test(tc, test_dot_segments);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
