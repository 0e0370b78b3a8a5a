/*
 * check_buf.c - unit tests for gw_buf_t (core/buf.c): growth and the NUL after the
 * content, the ceiling (an add past max fails and leaves the content unchanged, for
 * every kind of add), consume, reset, take, free, and JSON string escaping (checked
 * byte for byte and by parsing the output back with jansson).
 */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"

/* The content is exactly (s, n) and is followed by a NUL. */
#define ck_buf_eq(b, s, n)                                                                  \
    do {                                                                                    \
        ck_assert_uint_eq((b)->len, (n));                                                   \
        ck_assert_ptr_nonnull((b)->ptr);                                                    \
        ck_assert_int_eq(memcmp((b)->ptr, (s), (n)), 0);                                    \
        ck_assert_int_eq((b)->ptr[(b)->len], '\0');                                         \
    } while (0)

START_TEST(test_init_is_empty)
{
    gw_buf_t b;

    gw_buf_init(&b, 100);
    ck_assert_ptr_null(b.ptr);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.max, 100);
    gw_buf_free(&b); /* nothing allocated: fine */
}
END_TEST

START_TEST(test_add_grows)
{
    gw_buf_t b;
    char want[5000];
    size_t i;

    gw_buf_init(&b, sizeof(want));
    for (i = 0; i < sizeof(want); i++) {
        want[i] = (char)('0' + i % 10);
        ck_assert_int_eq(gw_buf_add(&b, &want[i], 1), GW_OK);
        ck_buf_eq(&b, want, i + 1);
        ck_assert_uint_gt(b.cap, b.len); /* room for the NUL */
    }
    gw_buf_free(&b);
    ck_assert_ptr_null(b.ptr);
    ck_assert_uint_eq(b.len, 0);

    /* One big add, then a zero-length add of NULL. */
    ck_assert_int_eq(gw_buf_add(&b, want, sizeof(want)), GW_OK);
    ck_assert_int_eq(gw_buf_add(&b, NULL, 0), GW_OK);
    ck_buf_eq(&b, want, sizeof(want));
    gw_buf_free(&b);
}
END_TEST

START_TEST(test_add_empty_allocates_nul)
{
    gw_buf_t b;

    gw_buf_init(&b, 10);
    ck_assert_int_eq(gw_buf_add(&b, "", 0), GW_OK);
    ck_assert_ptr_nonnull(b.ptr);
    ck_assert_str_eq(b.ptr, "");
    gw_buf_free(&b);
}
END_TEST

START_TEST(test_ceiling)
{
    gw_buf_t b;

    gw_buf_init(&b, 10);
    ck_assert_int_eq(gw_buf_add(&b, "01234", 5), GW_OK);
    ck_assert_int_eq(gw_buf_add(&b, "567890", 6), GW_ETOOBIG);
    ck_buf_eq(&b, "01234", 5);
    ck_assert_int_eq(gw_buf_add(&b, "56789", 5), GW_OK);
    ck_buf_eq(&b, "0123456789", 10);
    ck_assert_int_eq(gw_buf_add(&b, "x", 1), GW_ETOOBIG);
    ck_assert_int_eq(gw_buf_adds(&b, "x"), GW_ETOOBIG);
    ck_assert_int_eq(gw_buf_addf(&b, "%d", 1), GW_ETOOBIG);
    ck_assert_int_eq(gw_buf_add_json_str(&b, "", 0), GW_ETOOBIG);
    ck_assert_int_eq(gw_buf_add(&b, "", 0), GW_OK); /* nothing more is still fine */
    ck_assert_int_eq(gw_buf_addf(&b, "%s", ""), GW_OK);
    ck_buf_eq(&b, "0123456789", 10);
    ck_assert_uint_le(b.cap, b.max + 1); /* never allocates past the ceiling */
    gw_buf_free(&b);
}
END_TEST

START_TEST(test_ceiling_zero)
{
    gw_buf_t b;

    gw_buf_init(&b, 0);
    ck_assert_int_eq(gw_buf_add(&b, "x", 1), GW_ETOOBIG);
    ck_assert_ptr_null(b.ptr);
    ck_assert_int_eq(gw_buf_add(&b, "", 0), GW_OK);
    ck_buf_eq(&b, "", 0);
    gw_buf_free(&b);
}
END_TEST

/* A ceiling of SIZE_MAX means "no ceiling"; the size arithmetic must not wrap. */
START_TEST(test_ceiling_size_max)
{
    gw_buf_t b;
    char big[1000];

    memset(big, 'z', sizeof(big));
    gw_buf_init(&b, SIZE_MAX);
    ck_assert_int_eq(gw_buf_adds(&b, "hello"), GW_OK);
    ck_assert_int_eq(gw_buf_add(&b, big, sizeof(big)), GW_OK);
    ck_assert_uint_eq(b.len, 5 + sizeof(big));
    ck_assert_int_eq(memcmp(b.ptr, "hello", 5), 0);
    ck_assert_int_eq(gw_buf_add(&b, big, SIZE_MAX - b.len), GW_ETOOBIG); /* no room for NUL */
    ck_assert_int_eq(gw_buf_add(&b, big, SIZE_MAX), GW_ETOOBIG);
    ck_assert_uint_eq(b.len, 5 + sizeof(big));
    gw_buf_free(&b);
}
END_TEST

START_TEST(test_addf)
{
    gw_buf_t b;
    char want[1001];

    gw_buf_init(&b, 2000);
    ck_assert_int_eq(gw_buf_addf(&b, "%s=%d;", "a", 42), GW_OK);
    ck_buf_eq(&b, "a=42;", 5);
    /* Longer than addf's stack buffer. */
    memset(want, 'q', 1000);
    want[1000] = '\0';
    ck_assert_int_eq(gw_buf_addf(&b, "[%s]", want), GW_OK);
    ck_assert_uint_eq(b.len, 5 + 1002);
    ck_assert_int_eq(memcmp(b.ptr + 5, "[qqqq", 5), 0);
    ck_assert_str_eq(b.ptr + b.len - 2, "q]");
    gw_buf_free(&b);
}
END_TEST

/* Both addf paths (short and long output) leave the buffer alone when over the ceiling,
 * and both fit exactly at the ceiling. */
START_TEST(test_addf_ceiling)
{
    gw_buf_t b;
    char big[600];

    memset(big, 'w', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';

    gw_buf_init(&b, 8);
    ck_assert_int_eq(gw_buf_adds(&b, "ab"), GW_OK);
    ck_assert_int_eq(gw_buf_addf(&b, "%s", "1234567"), GW_ETOOBIG);
    ck_buf_eq(&b, "ab", 2);
    ck_assert_int_eq(gw_buf_addf(&b, "%s", "123456"), GW_OK);
    ck_buf_eq(&b, "ab123456", 8);
    gw_buf_free(&b);

    gw_buf_init(&b, 600); /* big is 599 bytes */
    ck_assert_int_eq(gw_buf_adds(&b, "ab"), GW_OK);
    ck_assert_int_eq(gw_buf_addf(&b, "%s", big), GW_ETOOBIG);
    ck_buf_eq(&b, "ab", 2);
    gw_buf_reset(&b);
    ck_assert_int_eq(gw_buf_addf(&b, "%s!", big), GW_OK);
    ck_assert_uint_eq(b.len, 600);
    ck_assert_int_eq(b.ptr[599], '!');
    ck_assert_int_eq(b.ptr[600], '\0');
    gw_buf_free(&b);
}
END_TEST

START_TEST(test_consume)
{
    gw_buf_t b;

    gw_buf_init(&b, 100);
    gw_buf_consume(&b, 0); /* on an empty, unallocated buffer */
    gw_buf_consume(&b, 5);
    ck_assert_uint_eq(b.len, 0);

    gw_buf_adds(&b, "hello world");
    gw_buf_consume(&b, 0);
    ck_buf_eq(&b, "hello world", 11);
    gw_buf_consume(&b, 6);
    ck_buf_eq(&b, "world", 5);
    gw_buf_adds(&b, "!");
    ck_buf_eq(&b, "world!", 6);
    gw_buf_consume(&b, 6);
    ck_buf_eq(&b, "", 0);
    gw_buf_adds(&b, "abc");
    gw_buf_consume(&b, 99); /* more than len: empties */
    ck_buf_eq(&b, "", 0);
    gw_buf_free(&b);
}
END_TEST

/* Consumed bytes give room back under the ceiling. */
START_TEST(test_consume_frees_room)
{
    gw_buf_t b;

    gw_buf_init(&b, 4);
    ck_assert_int_eq(gw_buf_adds(&b, "abcd"), GW_OK);
    ck_assert_int_eq(gw_buf_adds(&b, "e"), GW_ETOOBIG);
    gw_buf_consume(&b, 2);
    ck_assert_int_eq(gw_buf_adds(&b, "ef"), GW_OK);
    ck_buf_eq(&b, "cdef", 4);
    gw_buf_free(&b);
}
END_TEST

START_TEST(test_reset_keeps_memory)
{
    gw_buf_t b;
    size_t cap;

    gw_buf_init(&b, 1000);
    gw_buf_adds(&b, "some content");
    cap = b.cap;
    gw_buf_reset(&b);
    ck_buf_eq(&b, "", 0);
    ck_assert_uint_eq(b.cap, cap);
    gw_buf_adds(&b, "x");
    ck_buf_eq(&b, "x", 1);
    gw_buf_free(&b);

    gw_buf_init(&b, 10);
    gw_buf_reset(&b); /* unallocated: fine */
    ck_assert_ptr_null(b.ptr);
}
END_TEST

START_TEST(test_take)
{
    gw_buf_t b;
    size_t len = 99;
    char *p;

    gw_buf_init(&b, 100);
    gw_buf_adds(&b, "owned");
    p = gw_buf_take(&b, &len);
    ck_assert_uint_eq(len, 5);
    ck_assert_str_eq(p, "owned");
    ck_assert_ptr_null(b.ptr);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 0);
    ck_assert_uint_eq(b.max, 100); /* still usable with the same ceiling */
    free(p);

    ck_assert_int_eq(gw_buf_adds(&b, "again"), GW_OK);
    p = gw_buf_take(&b, NULL);
    ck_assert_str_eq(p, "again");
    free(p);
    gw_buf_free(&b);
}
END_TEST

/* buf.h: "NULL if empty", also when a reset left memory behind (which must not leak). */
START_TEST(test_take_empty)
{
    gw_buf_t b;
    size_t len = 99;

    gw_buf_init(&b, 100);
    ck_assert_ptr_null(gw_buf_take(&b, &len));
    ck_assert_uint_eq(len, 0);

    gw_buf_adds(&b, "x");
    gw_buf_reset(&b);
    len = 99;
    ck_assert_ptr_null(gw_buf_take(&b, &len));
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_null(b.ptr);

    gw_buf_adds(&b, "x");
    gw_buf_consume(&b, 1);
    ck_assert_ptr_null(gw_buf_take(&b, NULL));
    gw_buf_free(&b);
}
END_TEST

START_TEST(test_free_twice)
{
    gw_buf_t b;

    gw_buf_init(&b, 100);
    gw_buf_adds(&b, "x");
    gw_buf_free(&b);
    gw_buf_free(&b);
    ck_assert_ptr_null(b.ptr);
    ck_assert_int_eq(gw_buf_adds(&b, "y"), GW_OK); /* reusable after free */
    ck_buf_eq(&b, "y", 1);
    gw_buf_free(&b);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * JSON strings
 * ------------------------------------------------------------------------------- */

static void expect_json(const char *in, size_t n, const char *want)
{
    gw_buf_t b;

    gw_buf_init(&b, 1000);
    ck_assert_int_eq(gw_buf_add_json_str(&b, in, n), GW_OK);
    ck_assert_str_eq(b.ptr, want);
    gw_buf_free(&b);
}

START_TEST(test_json_str_exact)
{
    expect_json("", 0, "\"\"");
    expect_json("plain", 5, "\"plain\"");
    expect_json("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    expect_json("\n\r\t", 3, "\"\\n\\r\\t\"");
    expect_json("\b\f\x01\x1f", 4, "\"\\u0008\\u000c\\u0001\\u001f\"");
    expect_json("n\0l", 3, "\"n\\u0000l\"");
    expect_json("/ \x7f", 3, "\"/ \x7f\"");
    /* UTF-8 passes through as is. */
    expect_json("h\xC3\xA9 \xF0\x9F\xA6\x99", 8, "\"h\xC3\xA9 \xF0\x9F\xA6\x99\"");
    expect_json("cut", 2, "\"cu\"");
}
END_TEST

/* Every byte value that makes valid UTF-8 text round-trips through jansson. */
START_TEST(test_json_str_parses_back)
{
    char in[160];
    size_t n = 0, i, len;
    gw_buf_t b;
    json_t *j;
    json_error_t e;

    for (i = 0; i < 128; i++)
        in[n++] = (char)i;
    memcpy(in + n, "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9);
    n += 9;
    gw_buf_init(&b, 4096);
    ck_assert_int_eq(gw_buf_add_json_str(&b, in, n), GW_OK);
    j = json_loadb(b.ptr, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    ck_assert_msg(j != NULL, "not JSON: %s", e.text);
    ck_assert(json_is_string(j));
    len = json_string_length(j);
    ck_assert_uint_eq(len, n);
    ck_assert_int_eq(memcmp(json_string_value(j), in, n), 0);
    json_decref(j);
    gw_buf_free(&b);
}
END_TEST

/* A JSON string that does not fit leaves no half-escaped prefix behind, wherever the
 * ceiling falls. */
START_TEST(test_json_str_ceiling)
{
    static const char in[] = "a\"b\nc";
    static const char want[] = "pre\"a\\\"b\\nc\"";
    size_t max;

    for (max = 3; max <= sizeof(want) - 1; max++) {
        gw_buf_t b;
        gw_err_t rc;

        gw_buf_init(&b, max);
        ck_assert_int_eq(gw_buf_adds(&b, "pre"), GW_OK);
        rc = gw_buf_add_json_str(&b, in, sizeof(in) - 1);
        if (max < sizeof(want) - 1) {
            ck_assert_int_eq(rc, GW_ETOOBIG);
            ck_buf_eq(&b, "pre", 3);
        } else {
            ck_assert_int_eq(rc, GW_OK);
            ck_buf_eq(&b, want, sizeof(want) - 1);
        }
        gw_buf_free(&b);
    }
}
END_TEST

static Suite *buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("buf");

    tcase_add_test(tc, test_init_is_empty);
    tcase_add_test(tc, test_add_grows);
    tcase_add_test(tc, test_add_empty_allocates_nul);
    tcase_add_test(tc, test_ceiling);
    tcase_add_test(tc, test_ceiling_zero);
    tcase_add_test(tc, test_ceiling_size_max);
    tcase_add_test(tc, test_addf);
    tcase_add_test(tc, test_addf_ceiling);
    tcase_add_test(tc, test_consume);
    tcase_add_test(tc, test_consume_frees_room);
    tcase_add_test(tc, test_reset_keeps_memory);
    tcase_add_test(tc, test_take);
    tcase_add_test(tc, test_take_empty);
    tcase_add_test(tc, test_free_twice);
    suite_add_tcase(s, tc);

    tc = tcase_create("json");
    tcase_add_test(tc, test_json_str_exact);
    tcase_add_test(tc, test_json_str_parses_back);
    tcase_add_test(tc, test_json_str_ceiling);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(buf_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
