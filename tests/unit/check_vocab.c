/*
 * check_vocab.c - unit tests for the token vocabulary (core/vocab.c).
 *
 * Construction from raw pieces and from llama-server's `/tokenize` answer (string
 * pieces, byte-array pieces, NUL bytes through \u0000, ids in any order; missing,
 * duplicate, out-of-range and non-integer ids, wrong counts and bad pieces rejected
 * with a message). Lookups: gw_vocab_piece in and out of range, count_exact and
 * count_prefixed (0, 1, capped at 2). gw_vocab_split, which token-ID recovery relies
 * on to never guess: a unique split, none, ambiguous (2), the exactly-m constraint,
 * multi-byte and byte pieces, m at 64 and past it, and the input length bound.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vocab.h"

/* id:  0      1       2      3     4     5   6    7    8      9      10    11   12 */
static const char *const P[] = {"<unk>", "<s>", "</s>", "\xF0", "\x9F", "\x98", "\x80",
                                " faces", "\xE3\x83\xA0", "merge", "mer", "ge", " view",
                                /* 13   14   15    16     17       18   19 */
                                "a", "b", "ab", "x\0y", "\n", "\xE3", "\xE3\x83"};
#define NP (sizeof(P) / sizeof(P[0]))

static gw_vocab_t *small(void)
{
    size_t lens[NP], i;

    for (i = 0; i < NP; i++)
        lens[i] = i == 16 ? 3 : strlen(P[i]);
    return gw_vocab_from_pieces(P, lens, NP);
}

static void piece_is(const gw_vocab_t *v, int64_t id, const char *want, size_t want_len)
{
    size_t len = 12345;
    const char *p = gw_vocab_piece(v, id, &len);

    ck_assert_msg(p != NULL, "id %lld: no piece", (long long)id);
    ck_assert_msg(len == want_len && memcmp(p, want, len) == 0, "id %lld: piece [%.*s]",
                  (long long)id, (int)len, p);
}

/* ---------------------------------------------------------------------------------
 * Construction
 * ------------------------------------------------------------------------------- */

START_TEST(test_from_pieces)
{
    gw_vocab_t *v = small();
    size_t len;

    ck_assert_uint_eq(gw_vocab_size(v), NP);
    piece_is(v, 0, "<unk>", 5);
    piece_is(v, 7, " faces", 6);
    piece_is(v, 16, "x\0y", 3);
    piece_is(v, 19, "\xE3\x83", 2);
    ck_assert_ptr_null(gw_vocab_piece(v, -1, &len));
    ck_assert_ptr_null(gw_vocab_piece(v, (int64_t)NP, &len));
    ck_assert_ptr_null(gw_vocab_piece(v, INT64_MAX, &len));
    ck_assert_ptr_null(gw_vocab_piece(v, INT64_MIN, &len));
    gw_vocab_unref(v);
}
END_TEST

START_TEST(test_empty_and_refcount)
{
    gw_vocab_t *v = gw_vocab_from_pieces(NULL, NULL, 0);
    int32_t id;
    size_t len;

    ck_assert_uint_eq(gw_vocab_size(v), 0);
    ck_assert_ptr_null(gw_vocab_piece(v, 0, &len));
    ck_assert_int_eq(gw_vocab_count_exact(v, "a", 1, &id), 0);
    ck_assert_int_eq(gw_vocab_count_prefixed(v, "a", 1, &id), 0);
    ck_assert_int_eq(gw_vocab_split(v, "a", 1, 1, &id), 0);
    gw_vocab_ref(v);
    gw_vocab_unref(v);
    ck_assert_uint_eq(gw_vocab_size(v), 0); /* still alive: one reference left */
    gw_vocab_unref(v);
    gw_vocab_unref(NULL);
}
END_TEST

START_TEST(test_from_json)
{
    /* ids out of order; string pieces, byte arrays (an invalid UTF-8 byte), a NUL */
    static const char j[] =
        "{\"tokens\":[{\"id\":2,\"piece\":\"a\\u0000b\"},{\"id\":0,\"piece\":\"<unk>\"},"
        "{\"id\":3,\"piece\":[240]},{\"id\":1,\"piece\":\"caf\\u00e9\"},"
        "{\"id\":4,\"piece\":[]},{\"id\":5,\"piece\":\"\"}]}";
    gw_errbuf_t err = {{0}, {0}};
    gw_vocab_t *v = gw_vocab_from_json(j, sizeof(j) - 1, 6, &err);
    int32_t id = -1;

    ck_assert_msg(v != NULL, "%s", err.msg);
    ck_assert_uint_eq(gw_vocab_size(v), 6);
    piece_is(v, 0, "<unk>", 5);
    piece_is(v, 1, "caf\xC3\xA9", 5);
    piece_is(v, 2, "a\0b", 3);
    piece_is(v, 3, "\xF0", 1);
    piece_is(v, 4, "", 0);
    piece_is(v, 5, "", 0);
    ck_assert_int_eq(gw_vocab_count_exact(v, "a\0b", 3, &id), 1);
    ck_assert_int_eq(id, 2);
    ck_assert_int_eq(gw_vocab_count_exact(v, "a", 1, NULL), 0);
    ck_assert_int_eq(gw_vocab_count_exact(v, "", 0, NULL), 2);
    gw_vocab_unref(v);
}
END_TEST

typedef struct bad_json {
    const char *json;
    size_t n;
    const char *msg; /* a substring of the message */
} bad_json_t;

static const bad_json_t bad_json[] = {
    {"", 1, "not JSON"},
    {"{\"tokens\":[", 1, "not JSON"},
    {"[]", 0, "has 0 pieces, expected 0"},
    {"{}", 0, "has 0 pieces, expected 0"},
    {"{\"tokens\":{}}", 1, "has 0 pieces, expected 1"},
    {"{\"tokens\":[{\"id\":0,\"piece\":\"a\"}]}", 2, "has 1 pieces, expected 2"},
    {"{\"tokens\":[{\"id\":0,\"piece\":\"a\"},{\"id\":2,\"piece\":\"b\"}]}", 3,
     "has 2 pieces, expected 3"},
    /* right count, but one id missing because another is duplicated */
    {"{\"tokens\":[{\"id\":0,\"piece\":\"a\"},{\"id\":0,\"piece\":\"b\"}]}", 2, "bad id at 1"},
    {"{\"tokens\":[{\"id\":0,\"piece\":\"a\"},{\"id\":2,\"piece\":\"b\"}]}", 2, "bad id at 1"},
    {"{\"tokens\":[{\"id\":-1,\"piece\":\"a\"}]}", 1, "bad id at 0"},
    {"{\"tokens\":[{\"id\":\"0\",\"piece\":\"a\"}]}", 1, "bad id at 0"},
    {"{\"tokens\":[{\"id\":0.0,\"piece\":\"a\"}]}", 1, "bad id at 0"},
    {"{\"tokens\":[{\"piece\":\"a\"}]}", 1, "bad id at 0"},
    {"{\"tokens\":[0]}", 1, "bad id at 0"},
    {"{\"tokens\":[{\"id\":0}]}", 1, "bad piece for id 0"},
    {"{\"tokens\":[{\"id\":0,\"piece\":7}]}", 1, "bad piece for id 0"},
    {"{\"tokens\":[{\"id\":0,\"piece\":null}]}", 1, "bad piece for id 0"},
};
#define N_BAD_JSON (sizeof(bad_json) / sizeof(bad_json[0]))

START_TEST(test_from_json_bad)
{
    const bad_json_t *c = &bad_json[_i];
    gw_errbuf_t err = {{0}, {0}};
    gw_vocab_t *v = gw_vocab_from_json(c->json, strlen(c->json), c->n, &err);

    ck_assert_msg(v == NULL, "case %d accepted: %s", _i, c->json);
    ck_assert_msg(strstr(err.msg, c->msg) != NULL, "case %d: message [%s], want [%s]", _i,
                  err.msg, c->msg);
    ck_assert_str_eq(err.param, "");
}
END_TEST

/* A realistic size: every piece is found again by its bytes. */
START_TEST(test_from_json_large)
{
    size_t n = 5000, i, cap = n * 48 + 64, k = 0;
    char *j = malloc(cap);
    gw_errbuf_t err = {{0}, {0}};
    gw_vocab_t *v;

    ck_assert_ptr_nonnull(j);
    k += (size_t)snprintf(j + k, cap - k, "{\"tokens\":[");
    for (i = 0; i < n; i++)
        k += (size_t)snprintf(j + k, cap - k, "%s{\"id\":%zu,\"piece\":\"t%zu\"}", i ? "," : "",
                              n - 1 - i, n - 1 - i);
    k += (size_t)snprintf(j + k, cap - k, "]}");
    v = gw_vocab_from_json(j, k, n, &err);
    ck_assert_msg(v != NULL, "%s", err.msg);
    for (i = 0; i < n; i += 7) {
        char p[32];
        int32_t id = -1;
        int len = snprintf(p, sizeof(p), "t%zu", i);

        ck_assert_int_eq(gw_vocab_count_exact(v, p, (size_t)len, &id), 1);
        ck_assert_int_eq(id, (int32_t)i);
    }
    gw_vocab_unref(v);
    free(j);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * count_exact, count_prefixed
 * ------------------------------------------------------------------------------- */

START_TEST(test_count_exact)
{
    gw_vocab_t *v = small();
    int32_t id = -1;

    ck_assert_int_eq(gw_vocab_count_exact(v, "merge", 5, &id), 1);
    ck_assert_int_eq(id, 9);
    ck_assert_int_eq(gw_vocab_count_exact(v, "merg", 4, &id), 0);
    ck_assert_int_eq(gw_vocab_count_exact(v, "merges", 6, &id), 0);
    ck_assert_int_eq(gw_vocab_count_exact(v, "\x80", 1, &id), 1);
    ck_assert_int_eq(id, 6);
    ck_assert_int_eq(gw_vocab_count_exact(v, "x\0y", 3, &id), 1);
    ck_assert_int_eq(id, 16);
    ck_assert_int_eq(gw_vocab_count_exact(v, "x", 1, &id), 0);
    ck_assert_int_eq(gw_vocab_count_exact(v, "", 0, &id), 0);
    ck_assert_int_eq(gw_vocab_count_exact(v, "merge", 5, NULL), 1);
    gw_vocab_unref(v);

    /* duplicates count, capped at 2 */
    {
        const char *const q[] = {"a", "b", "a", "a", "c"};
        const size_t l[] = {1, 1, 1, 1, 1};

        v = gw_vocab_from_pieces(q, l, 5);
        ck_assert_int_eq(gw_vocab_count_exact(v, "a", 1, &id), 2);
        ck_assert(id == 0 || id == 2 || id == 3);
        ck_assert_int_eq(gw_vocab_count_exact(v, "c", 1, &id), 1);
        ck_assert_int_eq(id, 4);
        gw_vocab_unref(v);
    }
}
END_TEST

START_TEST(test_count_prefixed)
{
    gw_vocab_t *v = small();
    int32_t id = -1;

    ck_assert_int_eq(gw_vocab_count_prefixed(v, "merge", 5, &id), 1);
    ck_assert_int_eq(id, 9);
    ck_assert_int_eq(gw_vocab_count_prefixed(v, "mer", 3, &id), 2); /* mer, merge */
    ck_assert_int_eq(gw_vocab_count_prefixed(v, "me", 2, NULL), 2);
    ck_assert_int_eq(gw_vocab_count_prefixed(v, " f", 2, &id), 1);
    ck_assert_int_eq(id, 7);
    ck_assert_int_eq(gw_vocab_count_prefixed(v, " v", 2, &id), 1);
    ck_assert_int_eq(id, 12);
    ck_assert_int_eq(gw_vocab_count_prefixed(v, "zz", 2, &id), 0);
    ck_assert_int_eq(gw_vocab_count_prefixed(v, "merge!", 6, &id), 0);
    ck_assert_int_eq(gw_vocab_count_prefixed(v, "\xE3", 1, &id), 2); /* three pieces */
    ck_assert_int_eq(gw_vocab_count_prefixed(v, "\xE3\x83\xA0", 3, &id), 1);
    ck_assert_int_eq(id, 8);
    ck_assert_int_eq(gw_vocab_count_prefixed(v, "", 0, &id), 2);
    gw_vocab_unref(v);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * split
 * ------------------------------------------------------------------------------- */

typedef struct split_case {
    const char *text;
    size_t len;
    size_t m;
    int want;
    int32_t ids[8];
} split_case_t;

#define T(s) s, sizeof(s) - 1
static const split_case_t split_cases[] = {
    {T("merge"), 1, 1, {9}},
    {T("merge"), 2, 1, {10, 11}},        /* exactly m: mer + ge */
    {T("merge"), 3, 0, {0}},             /* no 3-piece split */
    {T("mer"), 1, 1, {10}},
    {T("ab"), 1, 1, {15}},
    {T("ab"), 2, 1, {13, 14}},
    {T("abab"), 2, 1, {15, 15}},
    {T("abab"), 3, 2, {0}},              /* a|b|ab, ab|a|b */
    {T("abab"), 4, 1, {13, 14, 13, 14}},
    {T("aab"), 2, 1, {13, 15}},
    {T("ba"), 2, 1, {14, 13}},
    {T("c"), 1, 0, {0}},
    {T("abc"), 2, 0, {0}},               /* no piece for "c" */
    {T(" faces view"), 2, 1, {7, 12}},
    {T(" faces view"), 1, 0, {0}},
    {T(" faces\n"), 2, 1, {7, 17}},
    {T("merge view"), 2, 1, {9, 12}},
    {T("merge view"), 3, 1, {10, 11, 12}},
    {T("merge view"), 1, 0, {0}},
    {T("merge\n merge"), 3, 0, {0}},     /* no " merge" piece */
    /* multi-byte pieces and byte pieces */
    {T("\xE3\x83\xA0"), 1, 1, {8}},
    {T("\xE3\x83\xA0"), 2, 0, {0}},      /* E3 83 | A0: no "A0" piece */
    {T("\xF0\x9F\x98\x80"), 4, 1, {3, 4, 5, 6}},
    {T("\xF0\x9F\x98\x80"), 3, 0, {0}},
    {T("\xF0\x9F\x98"), 3, 1, {3, 4, 5}},
    {T("\xF0\x9F\x98\x80merge"), 5, 1, {3, 4, 5, 6, 9}},
    {T("\xF0\x9F\x98\x80merge"), 6, 1, {3, 4, 5, 6, 10, 11}},
    {T("x\0y"), 1, 1, {16}},
    {T("merge"), 0, 0, {0}},             /* m = 0 only splits "" */
    {T(""), 0, 1, {0}},
    {T(""), 1, 0, {0}},
};
#define N_SPLIT (sizeof(split_cases) / sizeof(split_cases[0]))

START_TEST(test_split)
{
    const split_case_t *c = &split_cases[_i];
    gw_vocab_t *v = small();
    int32_t ids[64];
    size_t k;
    int rc;

    for (k = 0; k < 64; k++)
        ids[k] = -7;
    rc = gw_vocab_split(v, c->text, c->len, c->m, ids);
    ck_assert_msg(rc == c->want, "case %d: split(%.*s, m=%zu) = %d, want %d", _i, (int)c->len,
                  c->text, c->m, rc, c->want);
    if (rc == 1)
        for (k = 0; k < c->m; k++)
            ck_assert_msg(ids[k] == c->ids[k], "case %d: ids[%zu] = %d, want %d", _i, k, ids[k],
                          c->ids[k]);
    gw_vocab_unref(v);
}
END_TEST

/* Two ids with one piece: every split through it is two splits. */
START_TEST(test_split_duplicate_piece_is_ambiguous)
{
    const char *const q[] = {"a", "b", "b"};
    const size_t l[] = {1, 1, 1};
    gw_vocab_t *v = gw_vocab_from_pieces(q, l, 3);
    int32_t ids[4];

    ck_assert_int_eq(gw_vocab_split(v, "aa", 2, 2, ids), 1);
    ck_assert_int_eq(gw_vocab_split(v, "ab", 2, 2, ids), 2);
    ck_assert_int_eq(gw_vocab_split(v, "b", 1, 1, ids), 2);
    gw_vocab_unref(v);
}
END_TEST

/* m up to 64: a run of 64 byte pieces splits uniquely; 65 is refused (0). */
START_TEST(test_split_m_bound)
{
    gw_vocab_t *v = small();
    char text[130];
    int32_t ids[64];
    size_t k;

    for (k = 0; k < 64; k++)
        text[k] = (k % 2) ? 'b' : 'a';
    ck_assert_int_eq(gw_vocab_split(v, text, 64, 64, ids), 1);
    for (k = 0; k < 64; k++)
        ck_assert_int_eq(ids[k], (k % 2) ? 14 : 13);
    ck_assert_int_eq(gw_vocab_split(v, text, 64, 32, ids), 1);
    for (k = 0; k < 32; k++)
        ck_assert_int_eq(ids[k], 15);
    /* 33 pieces of "ab" x 32: choose which one pair to split, 32 ways: ambiguous */
    ck_assert_int_eq(gw_vocab_split(v, text, 64, 33, ids), 2);
    for (k = 0; k < 65; k++)
        text[k] = 'a';
    ck_assert_int_eq(gw_vocab_split(v, text, 65, 65, ids), 0);
    ck_assert_int_eq(gw_vocab_split(v, text, 64, 64, ids), 1);
    gw_vocab_unref(v);
}
END_TEST

/* The input length bound: 4096 bytes are split, longer input is refused. */
START_TEST(test_split_long_input)
{
    gw_vocab_t *v = small();
    char *text = malloc(4097);
    int32_t ids[64];
    size_t k;

    ck_assert_ptr_nonnull(text);
    for (k = 0; k < 4097; k++)
        text[k] = 'a';
    ck_assert_int_eq(gw_vocab_split(v, text, 4096, 64, ids), 0); /* too few pieces */
    ck_assert_int_eq(gw_vocab_split(v, text, 4097, 1, ids), 0);
    /* a long piece: the split looks at pieces up to the longest one's length */
    {
        char big[300];
        const char *q[2];
        size_t l[2];
        gw_vocab_t *w;

        memset(big, 'z', sizeof(big));
        q[0] = big;
        l[0] = sizeof(big);
        q[1] = "z";
        l[1] = 1;
        w = gw_vocab_from_pieces(q, l, 2);
        ck_assert_int_eq(gw_vocab_split(w, big, sizeof(big), 1, ids), 1);
        ck_assert_int_eq(ids[0], 0);
        ck_assert_int_eq(gw_vocab_split(w, big, sizeof(big), 2, ids), 0);
        ck_assert_int_eq(gw_vocab_split(w, big, 64, 64, ids), 1);
        ck_assert_int_eq(ids[63], 1);
        gw_vocab_unref(w);
    }
    free(text);
    gw_vocab_unref(v);
}
END_TEST

static Suite *vocab_suite(void)
{
    Suite *s = suite_create("vocab");
    TCase *tc;

    tc = tcase_create("build");
    tcase_add_test(tc, test_from_pieces);
    tcase_add_test(tc, test_empty_and_refcount);
    tcase_add_test(tc, test_from_json);
    tcase_add_loop_test(tc, test_from_json_bad, 0, (int)N_BAD_JSON);
    tcase_add_test(tc, test_from_json_large);
    suite_add_tcase(s, tc);

    tc = tcase_create("lookup");
    tcase_add_test(tc, test_count_exact);
    tcase_add_test(tc, test_count_prefixed);
    suite_add_tcase(s, tc);

    tc = tcase_create("split");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_split, 0, (int)N_SPLIT);
    tcase_add_test(tc, test_split_duplicate_piece_is_ambiguous);
    tcase_add_test(tc, test_split_m_bound);
    tcase_add_test(tc, test_split_long_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(vocab_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
