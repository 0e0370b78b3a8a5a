/*
 * check_jcheck.c - unit tests for the strict JSON checker (core/jcheck.c).
 *
 * The property under test is jcheck.h's contract: the checker never accepts a text that
 * jansson (json_loadb, JSON_DECODE_ANY) rejects. Every case is therefore run through both
 * and compared, in three ways:
 *  - tables: texts both accept (with the type the checker reports), texts both reject
 *    (every grammar corner, escapes, UTF-8, numbers at the int64 and double limits, NUL
 *    bytes), and the few texts only the checker rejects (the documented strictness);
 *  - sweeps: every 2-byte sequence and the interesting 3- and 4-byte sequences inside a
 *    string, every \uXXXX escape and every low half of a surrogate pair, integers around
 *    both int64 limits, reals around 1e308, every truncation and every single-byte
 *    substitution of a valid text, a NUL byte at every position; here the checker must
 *    agree with jansson exactly, except where the strictness is explained;
 *  - a deterministic pseudo-random mutation loop (fixed seed, bounded count) over seed
 *    texts, with the same rule.
 * "Explained" means the text holds what jcheck.h says the checker refuses: nesting deeper
 * than GW_JCHECK_MAX_DEPTH, a real of magnitude 1e308 or more (both seen in jansson's
 * tree), or NUL bytes that jansson skipped (the text without them passes the checker).
 *
 * The object iterator and gw_jcheck_unescape have their own tests at the end.
 */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jcheck.h"
#include "testutil.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---------------------------------------------------------------------------------
 * Helpers: the two verdicts and the explanation of a difference
 * ------------------------------------------------------------------------------- */

static int fast_ok(const char *p, size_t len)
{
    return gw_jcheck_text(p, len, GW_JCHECK_MAX_DEPTH, NULL);
}

static json_t *jansson_load(const char *p, size_t len)
{
    json_error_t je;

    return json_loadb(p, len, JSON_DECODE_ANY, &je);
}

static int jansson_ok(const char *p, size_t len)
{
    json_t *v = jansson_load(p, len);

    json_decref(v);
    return v != NULL;
}

/* Container depth of v, and whether it holds a real of magnitude >= 1e308. */
static size_t tree_depth(json_t *v, int *huge)
{
    size_t d = 0, i;
    const char *k;
    json_t *x;

    if (json_is_real(v) && (json_real_value(v) >= 1e308 || json_real_value(v) <= -1e308))
        *huge = 1;
    if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            size_t e = tree_depth(x, huge);

            d = e > d ? e : d;
        }
        return d + 1;
    }
    if (json_is_object(v)) {
        json_object_foreach(v, k, x)
        {
            size_t e = tree_depth(x, huge);

            d = e > d ? e : d;
        }
        return d + 1;
    }
    return 0;
}

/* jansson accepts p, the checker does not: is that one of the documented refusals? */
static int stricter_explained(const char *p, size_t len)
{
    json_t *v = jansson_load(p, len);
    int huge = 0, ok;
    size_t d, i, n = 0;
    char *q;

    if (v == NULL)
        return 0;
    d = tree_depth(v, &huge);
    json_decref(v);
    if (huge || d > GW_JCHECK_MAX_DEPTH)
        return 1;
    if (memchr(p, '\0', len) == NULL)
        return 0;
    q = malloc(len);
    for (i = 0; i < len; i++)
        if (p[i] != '\0')
            q[n++] = p[i];
    ok = fast_ok(q, n);
    free(q);
    return ok;
}

static void hexdump(char *out, size_t cap, const char *p, size_t len)
{
    size_t i, o = 0;

    for (i = 0; i < len && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c >= 0x20 && c < 0x7F && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o] = '\0';
}

/*
 * The differential rule: fast accepts => jansson accepts; jansson accepts and fast
 * rejects only when explained. Returns the checker's verdict.
 */
static int agree(const char *p, size_t len, const char *what)
{
    int f = fast_ok(p, len), j = jansson_ok(p, len);
    char dump[512];

    if (f && !j) {
        hexdump(dump, sizeof(dump), p, len);
        ck_abort_msg("%s: the checker accepts what jansson rejects: [%s]", what, dump);
    }
    if (!f && j && !stricter_explained(p, len)) {
        hexdump(dump, sizeof(dump), p, len);
        ck_abort_msg("%s: the checker rejects what jansson accepts: [%s]", what, dump);
    }
    return f;
}

/* ---------------------------------------------------------------------------------
 * Tables
 * ------------------------------------------------------------------------------- */

typedef struct text_case {
    const char *in;
    size_t len;
    int type; /* gw_jtype_t for good cases */
} text_case_t;

static const text_case_t good[] = {
    {S("0"), GW_JT_INTEGER},
    {S("-0"), GW_JT_INTEGER},
    {S("7"), GW_JT_INTEGER},
    {S("-1"), GW_JT_INTEGER},
    {S("10"), GW_JT_INTEGER},
    {S("9223372036854775807"), GW_JT_INTEGER},
    {S("-9223372036854775808"), GW_JT_INTEGER},
    {S("0.0"), GW_JT_REAL},
    {S("-0.0"), GW_JT_REAL},
    {S("1e5"), GW_JT_REAL},
    {S("1E+5"), GW_JT_REAL},
    {S("1e-5"), GW_JT_REAL},
    {S("-12.5e+3"), GW_JT_REAL},
    {S("9223372036854775808.0"), GW_JT_REAL},
    {S("99999999999999999999e0"), GW_JT_REAL},
    {S("9.99e307"), GW_JT_REAL},
    {S("0.1e308"), GW_JT_REAL},
    {S("1e-400"), GW_JT_REAL},   /* underflow: jansson accepts it */
    {S("0e999999"), GW_JT_REAL}, /* zero, whatever the exponent */
    {S("0.000e99999999999999999999"), GW_JT_REAL},
    {S("123456789012345678901234567890.5"), GW_JT_REAL},
    {S("true"), GW_JT_TRUE},
    {S("false"), GW_JT_FALSE},
    {S("null"), GW_JT_NULL},
    {S("\"\""), GW_JT_STRING},
    {S("\"abc\""), GW_JT_STRING},
    {S("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\""), GW_JT_STRING},
    {S("\"\\u0001\""), GW_JT_STRING},
    {S("\"\\u00e9\\u00E9\""), GW_JT_STRING},
    {S("\"\\uFFFF\\uffff\\uFFFE\""), GW_JT_STRING},
    {S("\"\\uD83D\\uDE00\""), GW_JT_STRING},
    {S("\"\\ud83d\\ude00\""), GW_JT_STRING},
    {S("\"\\uD800\\uDC00\\uDBFF\\uDFFF\""), GW_JT_STRING},
    {S("\"\x7f\""), GW_JT_STRING},
    {S("\"\xc2\x80\xdf\xbf\""), GW_JT_STRING},
    {S("\"\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\""), GW_JT_STRING},
    {S("\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\""), GW_JT_STRING},
    {S("\"long plain ascii text that crosses several eight byte words, then a \\n\""),
     GW_JT_STRING},
    {S("\"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 and more ascii after\""),
     GW_JT_STRING},
    {S("[]"), GW_JT_ARRAY},
    {S("{}"), GW_JT_OBJECT},
    {S(" [ ] "), GW_JT_ARRAY},
    {S("\t\r\n{\t\r\n}\t\r\n"), GW_JT_OBJECT},
    {S("[1,2,3]"), GW_JT_ARRAY},
    {S("[ \"a\" , \"b\" ]"), GW_JT_ARRAY},
    {S("{\"a\":1}"), GW_JT_OBJECT},
    {S("{ \"a\" : 1 , \"b\" : [ ] }"), GW_JT_OBJECT},
    {S("{\"a\":{\"b\":[true,false,null,{\"c\":[[]]}]}}"), GW_JT_OBJECT},
    {S("{\"\":0}"), GW_JT_OBJECT},
    {S("{\"a\":1,\"a\":2}"), GW_JT_OBJECT}, /* duplicates: jansson keeps the last */
    {S("{\"k\\u00e9y\\n\":\"v\"}"), GW_JT_OBJECT},
    {S("[[[[[[[[[[]]]]]]]]]]"), GW_JT_ARRAY},
    {S("[{},[],{\"x\":[{}]}]"), GW_JT_ARRAY},
    {S("[-1,0.5,1e2,\"s\",true,false,null,[],{}]"), GW_JT_ARRAY},
};
#define N_GOOD (sizeof(good) / sizeof(good[0]))

START_TEST(test_good)
{
    const text_case_t *c = &good[_i];
    gw_jtype_t t = GW_JT_NULL;

    ck_assert_msg(jansson_ok(c->in, c->len), "case %d: jansson rejects %s", _i, c->in);
    ck_assert_msg(gw_jcheck_text(c->in, c->len, GW_JCHECK_MAX_DEPTH, &t), "case %d: %s", _i,
                  c->in);
    ck_assert_msg((int)t == c->type, "case %d %s: type %d, want %d", _i, c->in, t, c->type);
}
END_TEST

static const text_case_t bad[] = {
    /* structure */
    {S(""), 0},
    {S(" \t\r\n"), 0},
    {S("["), 0},
    {S("]"), 0},
    {S("{"), 0},
    {S("}"), 0},
    {S("[}"), 0},
    {S("{]"), 0},
    {S("[1,]"), 0},
    {S("[,1]"), 0},
    {S("[,]"), 0},
    {S("[1,,2]"), 0},
    {S("{\"a\":1,}"), 0},
    {S("{,}"), 0},
    {S("{\"a\"}"), 0},
    {S("{\"a\":}"), 0},
    {S("{\"a\" 1}"), 0},
    {S("{\"a\"::1}"), 0},
    {S("{\"a\":1 \"b\":2}"), 0},
    {S("{1:1}"), 0},
    {S("{null:1}"), 0},
    {S("{'a':1}"), 0},
    {S("['a']"), 0},
    {S("[1 2]"), 0},
    {S("1 2"), 0},
    {S("[] []"), 0},
    {S("{}x"), 0},
    {S("{}}"), 0},
    {S("[[]"), 0},
    {S("[]]"), 0},
    {S("\v1"), 0},
    {S("\f1"), 0},
    {S("\xc2\xa0" "1"), 0}, /* no-break space is not JSON whitespace */
    {S("/*c*/1"), 0},
    {S("[1]//c"), 0},
    {S("\xef\xbb\xbf{}"), 0}, /* a BOM */
    {S("[\xc3\xa9]"), 0},      /* UTF-8 outside a string */
    /* numbers */
    {S("01"), 0},
    {S("-01"), 0},
    {S("00"), 0},
    {S("0.0.0"), 0},
    {S("+1"), 0},
    {S(".5"), 0},
    {S("1."), 0},
    {S("1.e5"), 0},
    {S("1e"), 0},
    {S("1e+"), 0},
    {S("1e-"), 0},
    {S("1E+-5"), 0},
    {S("-"), 0},
    {S("--1"), 0},
    {S("- 1"), 0},
    {S("0x10"), 0},
    {S("1.5.5"), 0},
    {S("1e5e5"), 0},
    {S("NaN"), 0},
    {S("Infinity"), 0},
    {S("-Infinity"), 0},
    {S("9223372036854775808"), 0},
    {S("-9223372036854775809"), 0},
    {S("9999999999999999999"), 0},
    {S("10000000000000000000"), 0},
    {S("99999999999999999999"), 0},
    {S("-99999999999999999999"), 0},
    {S("[18446744073709551616]"), 0},
    {S("1e309"), 0},
    {S("-1e309"), 0},
    {S("1e400"), 0},
    {S("2e308"), 0},
    {S("1e99999999999999999999"), 0},
    {S("{\"n\":1.8e308}"), 0},
    /* literals */
    {S("tru"), 0},
    {S("truex"), 0},
    {S("true1"), 0},
    {S("True"), 0},
    {S("TRUE"), 0},
    {S("nul"), 0},
    {S("nulll"), 0},
    {S("falsey"), 0},
    {S("[true false]"), 0},
    {S("undefined"), 0},
    /* strings */
    {S("\""), 0},
    {S("\"abc"), 0},
    {S("\"abc\\\""), 0},
    {S("\"\\"), 0},
    {S("\"\\x\""), 0},
    {S("\"\\a\""), 0},
    {S("\"\\'\""), 0},
    {S("\"\\0\""), 0},
    {S("\"\\u12\""), 0},
    {S("\"\\u123\""), 0},
    {S("\"\\u12G4\""), 0},
    {S("\"\\U0041\""), 0},
    {S("\"\\u 041\""), 0},
    {S("\"\\u0000\""), 0},
    {S("\"a\\u0000b\""), 0},
    {S("{\"\\u0000\":1}"), 0},
    {S("{\"a\\u0000\":1}"), 0},
    {S("\"\\uD800\""), 0},
    {S("\"\\uDBFF\""), 0},
    {S("\"\\uDC00\""), 0},
    {S("\"\\uDFFF\""), 0},
    {S("\"\\uDC00\\uD800\""), 0},
    {S("\"\\uD800\\u0041\""), 0},
    {S("\"\\uD800\\uD800\""), 0},
    {S("\"\\uD800\\uE000\""), 0},
    {S("\"\\uD800 \\uDC00\""), 0},
    {S("\"\\uD800\\n\""), 0},
    {S("\"\\uD800\\\""), 0},
    {S("\"\\uD800\\u\""), 0},
    {S("\"\\uD800\\uDC0\""), 0},
    {S("\"\\uD800x\""), 0},
    {S("\"a\nb\""), 0},
    {S("\"a\tb\""), 0},
    {S("\"a\rb\""), 0},
    {S("\"\x01\""), 0},
    {S("\"\x1f\""), 0},
    /* UTF-8 */
    {S("\"\x80\""), 0},
    {S("\"\xbf\""), 0},
    {S("\"\xc0\x80\""), 0},
    {S("\"\xc1\xbf\""), 0},
    {S("\"\xc2\""), 0},
    {S("\"\xc2"), 0},
    {S("\"\xc2\x41\""), 0},
    {S("\"\xc2\xc0\""), 0},
    {S("\"\xe0\x80\x80\""), 0},
    {S("\"\xe0\x9f\xbf\""), 0},
    {S("\"\xe2\x82\""), 0},
    {S("\"\xe2\x82\x41\""), 0},
    {S("\"\xed\xa0\x80\""), 0},
    {S("\"\xed\xbf\xbf\""), 0},
    {S("\"\xf0\x80\x80\x80\""), 0},
    {S("\"\xf0\x8f\xbf\xbf\""), 0},
    {S("\"\xf0\x90\x80\""), 0},
    {S("\"\xf4\x90\x80\x80\""), 0},
    {S("\"\xf5\x80\x80\x80\""), 0},
    {S("\"\xf8\x88\x80\x80\x80\""), 0},
    {S("\"\xfe\""), 0},
    {S("\"\xff\""), 0},
    {S("{\"k\xff\":1}"), 0},
    /* NUL bytes */
    {S("\0"), 0},
    {S("{}\0"), 0},
    {S("\0{}"), 0},
    {S("[\0]"), 0},
    {S("\"a\0b\""), 0},
    {S("{\"a\0\":1}"), 0},
    {S("tr\0ue"), 0},
};
#define N_BAD (sizeof(bad) / sizeof(bad[0]))

START_TEST(test_bad)
{
    const text_case_t *c = &bad[_i];
    char dump[256];

    hexdump(dump, sizeof(dump), c->in, c->len);
    ck_assert_msg(!jansson_ok(c->in, c->len), "case %d: jansson accepts [%s]", _i, dump);
    ck_assert_msg(!fast_ok(c->in, c->len), "case %d: the checker accepts [%s]", _i, dump);
}
END_TEST

/* What only the checker refuses, each explained by jcheck.h. */
static const text_case_t stricter[] = {
    {S("1e308"), 0},
    {S("-1e308"), 0},
    {S("1.5e308"), 0},
    {S("1.7976931348623157e308"), 0}, /* DBL_MAX itself */
    {S("10e307"), 0},
    {S("0.00001e313"), 0},
    {S("123456789e300"), 0},
    /* jansson skips a NUL byte that directly follows a number or a literal */
    {S("[1\0]"), 0},
    {S("[true\0,null\0]"), 0},
    {S("{\"a\":-5\0}"), 0},
    {S("7\0"), 0},
};
#define N_STRICTER (sizeof(stricter) / sizeof(stricter[0]))

START_TEST(test_stricter)
{
    const text_case_t *c = &stricter[_i];

    ck_assert_msg(jansson_ok(c->in, c->len), "case %d: jansson rejects %s", _i, c->in);
    ck_assert_msg(!fast_ok(c->in, c->len), "case %d: %s", _i, c->in);
    ck_assert(stricter_explained(c->in, c->len));
}
END_TEST

/* Only len bytes are read: what follows in memory does not matter. */
START_TEST(test_length_respected)
{
    static const char buf[] = "{\"a\":[1,2]} trailing";
    char *exact = malloc(11);

    ck_assert(fast_ok(buf, 11));
    ck_assert(!fast_ok(buf, 10));
    ck_assert(!fast_ok(buf, sizeof(buf) - 1));
    /* an exact-size heap copy: ASan sees any read past len */
    memcpy(exact, buf, 11);
    ck_assert(fast_ok(exact, 11));
    ck_assert(!fast_ok(exact, 9));
    ck_assert(!fast_ok(exact, 0));
    free(exact);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Depth
 * ------------------------------------------------------------------------------- */

static char *nested(size_t levels, const char *inner, size_t *len)
{
    size_t n = strlen(inner), i;
    char *p = malloc(2 * levels + n + 1);

    for (i = 0; i < levels; i++)
        p[i] = '[';
    memcpy(p + levels, inner, n);
    for (i = 0; i < levels; i++)
        p[levels + n + i] = ']';
    *len = 2 * levels + n;
    p[*len] = '\0';
    return p;
}

START_TEST(test_depth)
{
    size_t len;
    char *p;

    p = nested(GW_JCHECK_MAX_DEPTH, "1", &len);
    ck_assert(fast_ok(p, len));
    ck_assert(jansson_ok(p, len));
    ck_assert(gw_jcheck_text(p, len, GW_JCHECK_MAX_DEPTH + 100, NULL)); /* capped, same */
    ck_assert(!gw_jcheck_text(p, len, GW_JCHECK_MAX_DEPTH - 1, NULL));
    free(p);
    p = nested(GW_JCHECK_MAX_DEPTH + 1, "", &len);
    ck_assert(!fast_ok(p, len));
    ck_assert(jansson_ok(p, len)); /* jansson goes to 2048 */
    ck_assert(stricter_explained(p, len));
    free(p);
    p = nested(2048, "1", &len); /* too deep for jansson too */
    ck_assert(!jansson_ok(p, len));
    ck_assert(!fast_ok(p, len));
    free(p);
    p = nested(100000, "", &len); /* no recursion: no stack overflow either way */
    ck_assert(!fast_ok(p, len));
    free(p);

    /* the limit counts objects and arrays alike, and only containers */
    ck_assert(gw_jcheck_text(S("{\"a\":[{\"b\":1}]}"), 3, NULL));
    ck_assert(!gw_jcheck_text(S("{\"a\":[{\"b\":1}]}"), 2, NULL));
    ck_assert(gw_jcheck_text(S("[[],[],{}]"), 2, NULL));
    ck_assert(gw_jcheck_text(S("\"s\""), 0, NULL));
    ck_assert(!gw_jcheck_text(S("[]"), 0, NULL));
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Sweeps: the checker agrees with jansson exactly
 * ------------------------------------------------------------------------------- */

static void exact(const char *p, size_t len, const char *what)
{
    int f = fast_ok(p, len), j = jansson_ok(p, len);
    char dump[256];

    if (f != j) {
        hexdump(dump, sizeof(dump), p, len);
        ck_abort_msg("%s: checker %d, jansson %d: [%s]", what, f, j, dump);
    }
}

START_TEST(test_sweep_utf8)
{
    static const unsigned char tails[] = {0x00, 0x22, 0x41, 0x5c, 0x7f, 0x80,
                                          0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff};
    char s[8];
    unsigned a, b, c, d;
    size_t nt = sizeof(tails);

    /* every 1- and 2-byte body of a string */
    for (a = 0; a < 256; a++) {
        s[0] = '"';
        s[1] = (char)a;
        s[2] = '"';
        exact(s, 3, "1-byte");
        for (b = 0; b < 256; b++) {
            s[2] = (char)b;
            s[3] = '"';
            exact(s, 4, "2-byte");
        }
    }
    /* 3-byte leads with every second byte and the interesting third bytes */
    for (a = 0xe0; a <= 0xef; a++)
        for (b = 0; b < 256; b++)
            for (c = 0; c < nt; c++) {
                s[0] = '"';
                s[1] = (char)a;
                s[2] = (char)b;
                s[3] = (char)tails[c];
                s[4] = '"';
                exact(s, 5, "3-byte");
            }
    /* 4-byte leads (and the invalid F5..FF) */
    for (a = 0xf0; a <= 0xff; a++)
        for (b = 0; b < 256; b++)
            for (c = 0; c < nt; c++)
                for (d = 0; d < nt; d += 3) {
                    s[0] = '"';
                    s[1] = (char)a;
                    s[2] = (char)b;
                    s[3] = (char)tails[c];
                    s[4] = (char)tails[d];
                    s[5] = '"';
                    exact(s, 6, "4-byte");
                }
}
END_TEST

START_TEST(test_sweep_escapes)
{
    char s[32];
    unsigned u, lo;
    int n, c;

    for (u = 0; u < 0x10000; u++) {
        n = snprintf(s, sizeof(s), "\"\\u%04x\"", u);
        exact(s, (size_t)n, "\\u");
        n = snprintf(s, sizeof(s), "\"\\u%04Xz\"", u);
        exact(s, (size_t)n, "\\U");
    }
    for (lo = 0; lo < 0x10000; lo++) {
        n = snprintf(s, sizeof(s), "\"\\uD800\\u%04x\"", lo);
        exact(s, (size_t)n, "pair");
        if (lo % 17 == 0 || (lo >= 0xdbf0 && lo <= 0xe00f)) {
            n = snprintf(s, sizeof(s), "\"\\udbff\\u%04X\"", lo);
            exact(s, (size_t)n, "pair");
        }
    }
    for (c = 0; c < 256; c++) {
        s[0] = '"';
        s[1] = '\\';
        s[2] = (char)c;
        s[3] = '"';
        exact(s, 4, "escape");
    }
}
END_TEST

START_TEST(test_sweep_numbers)
{
    static const char *const bases[] = {"9223372036854775", "-9223372036854775"};
    static const char *const mant[] = {"1", "9", "1.0", "9.99", "17976931348623157",
                                       "0.001", "0.0", "123456789"};
    char s[64];
    int n, k, e, b;
    size_t m;

    /* integers around both int64 limits, and one digit longer */
    for (b = 0; b < 2; b++)
        for (k = 0; k < 1000; k++) {
            n = snprintf(s, sizeof(s), "%s%03d", bases[b], k);
            exact(s, (size_t)n, "int64");
            n = snprintf(s, sizeof(s), "%s%04d", bases[b], k);
            exact(s, (size_t)n, "int64+1");
        }
    /* reals around the overflow: the checker may only be stricter, and explained */
    for (m = 0; m < sizeof(mant) / sizeof(mant[0]); m++)
        for (e = 280; e < 330; e++) {
            n = snprintf(s, sizeof(s), "%se%d", mant[m], e);
            agree(s, (size_t)n, "real");
            n = snprintf(s, sizeof(s), "-%sE+%d", mant[m], e);
            agree(s, (size_t)n, "real");
            n = snprintf(s, sizeof(s), "%se-%d", mant[m], e);
            exact(s, (size_t)n, "small real");
        }
}
END_TEST

static const char *const seeds[] = {
    "{\"model\":\"qwen\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello \\u00e9 \\ud83d"
    "\\ude00 caf\xc3\xa9\"}],\"stream\":true,\"max_tokens\":-12,\"temperature\":0.7,"
    "\"stop\":[\"\\n\",\"END\"],\"logit_bias\":{\"15\":-1.5e2},\"seed\":9223372036854775807,"
    "\"x\":[null,false,{}]}",
    "[0,-0,1.5e-3,\"\\\"\\\\\\/\\b\\f\\n\\r\\t\",[[]],{\"\":{}}]",
    "{\"a\":\"\xe2\x82\xac\xf0\x9f\x98\x80\xed\x9f\xbf\",\"b\":-9223372036854775808}",
};
#define N_SEEDS (sizeof(seeds) / sizeof(seeds[0]))

START_TEST(test_truncations_and_substitutions)
{
    size_t s, i, len;
    unsigned c;
    char *p;

    for (s = 0; s < N_SEEDS; s++) {
        len = strlen(seeds[s]);
        ck_assert(fast_ok(seeds[s], len));
        for (i = 0; i <= len; i++)
            exact(seeds[s], i, "truncation");
        p = malloc(len + 1);
        for (i = 0; i < len; i++) {
            for (c = 0; c < 256; c++) {
                memcpy(p, seeds[s], len);
                p[i] = (char)c;
                agree(p, len, "substitution");
            }
            /* a NUL byte inserted at every position */
            memcpy(p, seeds[s], i);
            p[i] = '\0';
            memcpy(p + i + 1, seeds[s] + i, len - i);
            agree(p, len + 1, "NUL insertion");
        }
        free(p);
    }
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Differential mutation loop (deterministic)
 * ------------------------------------------------------------------------------- */

#define MUT_ROUNDS 60000
#define MUT_MAX 4096

static uint64_t rng;

static uint64_t rnd(void)
{
    return gw_test_rand(&rng);
}

/* Tokens that mutations splice in: the corners the grammar cares about. */
static const char *const toks[] = {
    "\"", "\\", "\\u", "\\u0000", "\\uD800", "\\uDC00", "\\ud83d\\ude00", "{", "}", "[", "]",
    ":", ",", " ", "\n", "0", "-", "1e308", "1e-999", "9223372036854775808", ".", "e+", "true",
    "null", "\xc3", "\xa9", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xef\xbf\xbf", "\x00", "\x1f",
    "\"a\":1,", "[[[[", "]]]]",
};

static size_t mutate(char *p, size_t len)
{
    size_t n = 1 + rnd() % 4, k;

    for (k = 0; k < n; k++) {
        size_t at = len ? rnd() % (len + 1) : 0, m;
        const char *t;

        switch (rnd() % 6) {
        case 0: /* flip a byte */
            if (len)
                p[at % len] = (char)(p[at % len] ^ (1 << (rnd() % 8)));
            break;
        case 1: /* set a byte */
            if (len)
                p[at % len] = (char)rnd();
            break;
        case 2: /* delete a run */
            m = at < len ? 1 + rnd() % (len - at) % 8 : 0;
            memmove(p + at, p + at + m, len - at - m);
            len -= m;
            break;
        case 3: /* insert a token */
        case 4:
            t = toks[rnd() % (sizeof(toks) / sizeof(toks[0]))];
            m = t[0] ? strlen(t) : 1;
            if (len + m <= MUT_MAX) {
                memmove(p + at + m, p + at, len - at);
                memcpy(p + at, t, m);
                len += m;
            }
            break;
        default: /* duplicate a run */
            m = at < len ? 1 + rnd() % (len - at) % 16 : 0;
            if (len + m <= MUT_MAX) {
                memmove(p + at + m, p + at, len - at);
                len += m;
            }
            break;
        }
    }
    return len;
}

START_TEST(test_mutations)
{
    char *p = malloc(MUT_MAX);
    size_t round, len, accepted = 0, both = 0;

    rng = 0x9e3779b97f4a7c15ull;
    for (round = 0; round < MUT_ROUNDS; round++) {
        const char *seed = seeds[round % N_SEEDS];
        int f;

        len = strlen(seed);
        memcpy(p, seed, len);
        len = mutate(p, len);
        f = agree(p, len, "mutation");
        accepted += (size_t)f;
        both += (size_t)(f || jansson_ok(p, len));
    }
    free(p);
    /* the loop must exercise both verdicts */
    ck_assert_msg(accepted > MUT_ROUNDS / 50 && accepted < MUT_ROUNDS, "accepted %zu of %d",
                  accepted, MUT_ROUNDS);
    /* jansson accepts a few more (NUL bytes after numbers, 1e308), each explained */
    ck_assert_msg(both - accepted < MUT_ROUNDS / 1000, "%zu explained", both - accepted);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Object iterator and unescape
 * ------------------------------------------------------------------------------- */

START_TEST(test_obj_members)
{
    static const char body[] =
        " { \"a\" : 1 , \"k\\u00e9\" : [1,{\"x\":2}] ,\"a\":\"s\", \"z\":{} } ";
    gw_jcheck_obj_t it;
    gw_jmember_t m;
    size_t len = sizeof(body) - 1;

    gw_jcheck_obj_init(&it, 0, GW_JCHECK_MAX_DEPTH);
    ck_assert_int_eq(gw_jcheck_obj_next(body, len, &it, &m), 1);
    ck_assert_uint_eq(m.key_len, 1);
    ck_assert(memcmp(body + m.key_off, "a", 1) == 0);
    ck_assert(!m.key_escaped);
    ck_assert_int_eq(m.type, GW_JT_INTEGER);
    ck_assert(memcmp(body + m.val_off, "1", m.val_len) == 0 && m.val_len == 1);
    ck_assert_int_eq(gw_jcheck_obj_next(body, len, &it, &m), 1);
    ck_assert(m.key_escaped);
    ck_assert_uint_eq(m.key_len, 7);
    ck_assert_int_eq(m.type, GW_JT_ARRAY);
    ck_assert_uint_eq(m.val_len, 11);
    ck_assert_int_eq(gw_jcheck_obj_next(body, len, &it, &m), 1);
    ck_assert_int_eq(m.type, GW_JT_STRING);
    ck_assert(memcmp(body + m.val_off, "\"s\"", 3) == 0 && m.val_len == 3);
    ck_assert_int_eq(gw_jcheck_obj_next(body, len, &it, &m), 1);
    ck_assert_int_eq(m.type, GW_JT_OBJECT);
    ck_assert_int_eq(gw_jcheck_obj_next(body, len, &it, &m), 0);
    ck_assert_int_eq(gw_jcheck_obj_next(body, len, &it, &m), 0); /* stays at the end */
    ck_assert(gw_jcheck_rest_ws(body, len, it.pos));
    ck_assert_uint_eq(it.pos, len - 1);

    gw_jcheck_obj_init(&it, 0, 4);
    ck_assert_int_eq(gw_jcheck_obj_next(S("{}"), &it, &m), 0);
    gw_jcheck_obj_init(&it, 0, 4);
    ck_assert_int_eq(gw_jcheck_obj_next(S("[]"), &it, &m), -1);
    ck_assert_int_eq(gw_jcheck_obj_next(S("[]"), &it, &m), -1); /* stays failed */
}
END_TEST

START_TEST(test_obj_malformed)
{
    static const char *const cases[] = {
        "",        "{",          "{\"a\"",      "{\"a\":",     "{\"a\":1",      "{\"a\":1,",
        "{\"a\":1,}", "{,\"a\":1}", "{\"a\" 1}", "{\"a\":01}", "{\"\\u0000\":1}", "{\"a\":[}",
        "{a:1}",   "{\"a\":1]",  "1",          "\"{}\"",      "{\"a\":\"\xff\"}",
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gw_jcheck_obj_t it;
        gw_jmember_t m;
        int rc;

        gw_jcheck_obj_init(&it, 0, GW_JCHECK_MAX_DEPTH);
        while ((rc = gw_jcheck_obj_next(cases[i], strlen(cases[i]), &it, &m)) == 1)
            ;
        ck_assert_msg(rc == -1, "case %zu [%s]: %d", i, cases[i], rc);
    }
}
END_TEST

/* The iterator's depth budget counts the object itself. */
START_TEST(test_obj_depth)
{
    static const char body[] = "{\"a\":[[1]]}";
    gw_jcheck_obj_t it;
    gw_jmember_t m;

    gw_jcheck_obj_init(&it, 0, 3);
    ck_assert_int_eq(gw_jcheck_obj_next(S(body), &it, &m), 1);
    gw_jcheck_obj_init(&it, 0, 2);
    ck_assert_int_eq(gw_jcheck_obj_next(S(body), &it, &m), -1);
    gw_jcheck_obj_init(&it, 0, 0);
    ck_assert_int_eq(gw_jcheck_obj_next(S("{}"), &it, &m), -1);
}
END_TEST

/* gw_jcheck_unescape gives jansson's decoded bytes. */
START_TEST(test_unescape)
{
    static const char *const strs[] = {
        "\"plain\"",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
        "\"\\u0041\\u00e9\\u20AC\\uffff\"",
        "\"a\\ud83d\\ude00b\\uDBFF\\uDFFF\"",
        "\"caf\xc3\xa9\\u00e9\"",
        "\"\"",
    };
    char out[64];
    size_t i, n;

    for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        size_t len = strlen(strs[i]);
        json_t *v = jansson_load(strs[i], len);

        ck_assert_ptr_nonnull(v);
        ck_assert(fast_ok(strs[i], len));
        n = gw_jcheck_unescape(strs[i] + 1, len - 2, out, sizeof(out));
        ck_assert_uint_eq(n, json_string_length(v));
        ck_assert(memcmp(out, json_string_value(v), n) == 0);
        /* one byte short of room: refused, not truncated */
        if (n > 0)
            ck_assert_uint_eq(gw_jcheck_unescape(strs[i] + 1, len - 2, out, n - 1),
                              (size_t)-1);
        json_decref(v);
    }
}
END_TEST

static Suite *jcheck_suite(void)
{
    Suite *s = suite_create("jcheck");
    TCase *tc;

    tc = tcase_create("tables");
    tcase_add_loop_test(tc, test_good, 0, (int)N_GOOD);
    tcase_add_loop_test(tc, test_bad, 0, (int)N_BAD);
    tcase_add_loop_test(tc, test_stricter, 0, (int)N_STRICTER);
    tcase_add_test(tc, test_length_respected);
    tcase_add_test(tc, test_depth);
    suite_add_tcase(s, tc);

    tc = tcase_create("differential");
    tcase_set_timeout(tc, 300); /* sanitizer builds are slow; CK_FORK=no has no timeout */
    tcase_add_test(tc, test_sweep_utf8);
    tcase_add_test(tc, test_sweep_escapes);
    tcase_add_test(tc, test_sweep_numbers);
    tcase_add_test(tc, test_truncations_and_substitutions);
    tcase_add_test(tc, test_mutations);
    suite_add_tcase(s, tc);

    tc = tcase_create("object");
    tcase_add_test(tc, test_obj_members);
    tcase_add_test(tc, test_obj_malformed);
    tcase_add_test(tc, test_obj_depth);
    tcase_add_test(tc, test_unescape);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jcheck_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
