/*
 * check_auth.c - unit tests for the API key set (http/auth.c).
 *
 * SHA-256 against the FIPS 180-2 vectors; header parsing as a table; the lookup
 * against a configuration loaded with gw_conf_load_text, including the constant-time
 * path: auth.c is included here with CRYPTO_memcmp counted, so the tests see that every
 * lookup compares against every configured key, whether it matches the first, the last
 * or none. Then model allow-lists (any name of an allowed model), concurrent slots,
 * and key generation (format, uniqueness, and that the printed entry hashes the
 * printed key).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* Count the constant-time comparisons made by auth.c. */
static int n_compares;
static int counting_memcmp(const void *a, const void *b, size_t len)
{
    n_compares++;
    return CRYPTO_memcmp(a, b, len);
}
#define CRYPTO_memcmp counting_memcmp
#include "http/auth.c" /* NOLINT: statics and the counted compare (STYLE rule 15) */
#undef CRYPTO_memcmp

#include "backend/registry.h"
#include "conf/conf.h"

/* sha256("sk-alpha"), sha256("sk-beta"), sha256("sk-gamma") */
static char hex_alpha[65], hex_beta[65], hex_gamma[65];

static void hex_of(const char *key, char out[65])
{
    unsigned char h[32];

    gw_auth_sha256(key, strlen(key), h);
    gw_auth_hex(h, out);
}

typedef struct fixture {
    gw_conf_t *conf;
    gw_registry_t *reg;
    gw_auth_t *auth;
} fixture_t;

static fixture_t load(void)
{
    char json[2048];
    fixture_t f;
    gw_errbuf_t err;
    gw_err_t rc;

    hex_of("sk-alpha", hex_alpha);
    hex_of("sk-beta", hex_beta);
    hex_of("sk-gamma", hex_gamma);
    snprintf(json, sizeof(json),
             "{\"models\": {\"qwen\": {\"upstream\": \"http://h:1\", \"aliases\": [\"gpt-4o\"]},"
             "             \"llama\": {\"upstream\": \"http://h:2\"},"
             "             \"gemma\": {\"upstream\": \"http://h:3\", \"aliases\": [\"g\"]}},"
             " \"auth\": {\"keys\": {"
             "   \"alpha\": {\"sha256\": \"%s\"},"
             "   \"beta\": {\"sha256\": \"%s\", \"models\": [\"gpt-4o\", \"g\"], "
             "              \"max_concurrent\": 2},"
             "   \"gamma\": {\"sha256\": \"%s\", \"max_concurrent\": 1}}}}",
             hex_alpha, hex_beta, hex_gamma);
    memset(&err, 0, sizeof(err));
    rc = gw_conf_load_text(json, strlen(json), &f.conf, &err);
    ck_assert_msg(rc == GW_OK, "%s", err.msg);
    f.reg = gw_registry_new(f.conf);
    f.auth = gw_auth_new(f.conf, f.reg);
    return f;
}

static void unload(fixture_t *f)
{
    gw_auth_free(f->auth);
    gw_registry_free(f->reg);
    gw_conf_free(f->conf);
}

/* ------------------------------------------------------------------ hashing --- */

START_TEST(test_sha256_vectors)
{
    char hex[65];

    hex_of("abc", hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    hex_of("", hex);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", hex);
    ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

/* The hash covers exactly len bytes: embedded NULs and a longer buffer count. */
START_TEST(test_sha256_length)
{
    unsigned char a[32], b[32];

    gw_auth_sha256("sk-alpha-and-more", 8, a);
    gw_auth_sha256("sk-alpha", 8, b);
    ck_assert_mem_eq(a, b, 32);
    gw_auth_sha256("sk-alpha\0x", 10, a);
    ck_assert_int_ne(memcmp(a, b, 32), 0);
}
END_TEST

/* ------------------------------------------------------------------ headers --- */

typedef struct extract_row {
    const char *authorization, *x_api_key;
    gw_auth_cred_t cred;
    const char *key; /* for GW_AUTH_FOUND */
} extract_row_t;

static const extract_row_t extract_rows[] = {
    {NULL, NULL, GW_AUTH_NONE, NULL},
    {"Bearer sk-1", NULL, GW_AUTH_FOUND, "sk-1"},
    {"bearer sk-1", NULL, GW_AUTH_FOUND, "sk-1"},
    {"BEARER   sk-1  ", NULL, GW_AUTH_FOUND, "sk-1"},
    {"  Bearer\tsk-1\t", NULL, GW_AUTH_FOUND, "sk-1"},
    {"Bearer sk-1", "sk-2", GW_AUTH_FOUND, "sk-1"}, /* Authorization wins */
    {NULL, "sk-2", GW_AUTH_FOUND, "sk-2"},
    {NULL, "  sk-2 ", GW_AUTH_FOUND, "sk-2"},
    {"Basic dXNlcjpwdw==", "sk-2", GW_AUTH_FOUND, "sk-2"}, /* not our scheme */
    {"Basic dXNlcjpwdw==", NULL, GW_AUTH_MALFORMED, NULL},
    {"Bearer", NULL, GW_AUTH_MALFORMED, NULL},
    {"Bearer ", NULL, GW_AUTH_MALFORMED, NULL},
    {"Bearer    ", "sk-2", GW_AUTH_MALFORMED, NULL}, /* a Bearer header that says nothing */
    {"Bearersk-1", NULL, GW_AUTH_MALFORMED, NULL},
    {"Bearer sk 1", NULL, GW_AUTH_MALFORMED, NULL},
    {"Bearer sk-\x01", NULL, GW_AUTH_MALFORMED, NULL},
    {"Bearer sk-\x7f", NULL, GW_AUTH_MALFORMED, NULL},
    {NULL, "", GW_AUTH_MALFORMED, NULL},
    {NULL, "sk 2", GW_AUTH_MALFORMED, NULL},
    {"", NULL, GW_AUTH_MALFORMED, NULL},
    {"Token sk-1", NULL, GW_AUTH_MALFORMED, NULL},
};

START_TEST(test_extract)
{
    const extract_row_t *row = &extract_rows[_i];
    const char *key = NULL;
    size_t len = 0;
    gw_auth_cred_t cred = gw_auth_extract(row->authorization, row->x_api_key, &key, &len);

    ck_assert_msg(cred == row->cred, "row %d: cred %d, want %d", _i, (int)cred, (int)row->cred);
    if (row->cred == GW_AUTH_FOUND) {
        ck_assert_uint_eq(len, strlen(row->key));
        ck_assert_int_eq(memcmp(key, row->key, len), 0);
    }
}
END_TEST

START_TEST(test_extract_length_limit)
{
    char auth[GW_AUTH_KEY_MAX + 16];
    const char *key;
    size_t len;

    memcpy(auth, "Bearer ", 7);
    memset(auth + 7, 'k', GW_AUTH_KEY_MAX);
    auth[7 + GW_AUTH_KEY_MAX] = '\0';
    ck_assert_int_eq(gw_auth_extract(auth, NULL, &key, &len), GW_AUTH_FOUND);
    ck_assert_uint_eq(len, GW_AUTH_KEY_MAX);
    auth[7 + GW_AUTH_KEY_MAX] = 'k';
    auth[8 + GW_AUTH_KEY_MAX] = '\0';
    ck_assert_int_eq(gw_auth_extract(auth, NULL, &key, &len), GW_AUTH_MALFORMED);
}
END_TEST

/* ------------------------------------------------------------------ lookup ---- */

START_TEST(test_find)
{
    fixture_t f = load();
    gw_auth_key_t *k;

    ck_assert_uint_eq(gw_auth_count(f.auth), 3);
    k = gw_auth_find(f.auth, "sk-alpha", 8);
    ck_assert_ptr_nonnull(k);
    ck_assert_str_eq(gw_auth_key_name(k), "alpha");
    k = gw_auth_find(f.auth, "sk-gamma", 8);
    ck_assert_ptr_nonnull(k);
    ck_assert_str_eq(gw_auth_key_name(k), "gamma");
    ck_assert_ptr_null(gw_auth_find(f.auth, "sk-alph", 7));
    ck_assert_ptr_null(gw_auth_find(f.auth, "sk-alphaa", 9));
    ck_assert_ptr_null(gw_auth_find(f.auth, "SK-ALPHA", 8));
    ck_assert_ptr_null(gw_auth_find(f.auth, "", 0));
    /* the configured hash itself is not a key */
    ck_assert_ptr_null(gw_auth_find(f.auth, hex_alpha, 64));
    ck_assert_str_eq(gw_auth_key_name(NULL), "-");
    unload(&f);
}
END_TEST

/* Every lookup compares with every key: no early exit on a match or a miss. */
START_TEST(test_find_constant_path)
{
    fixture_t f = load();
    static const char *const tries[] = {"sk-alpha", "sk-beta", "sk-gamma", "sk-none", "x"};
    size_t i;

    for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        n_compares = 0;
        (void)gw_auth_find(f.auth, tries[i], strlen(tries[i]));
        ck_assert_msg(n_compares == 3, "%s: %d comparisons, want 3", tries[i], n_compares);
    }
    unload(&f);
}
END_TEST

/* No keys configured: authentication is off and nothing matches. */
START_TEST(test_no_keys)
{
    const char *json = "{\"models\": {\"q\": {\"upstream\": \"http://h\"}}}";
    gw_conf_t *conf;
    gw_registry_t *reg;
    gw_auth_t *a;

    ck_assert_int_eq(gw_conf_load_text(json, strlen(json), &conf, NULL), GW_OK);
    reg = gw_registry_new(conf);
    a = gw_auth_new(conf, reg);
    ck_assert_uint_eq(gw_auth_count(a), 0);
    ck_assert_ptr_null(gw_auth_find(a, "sk-alpha", 8));
    ck_assert_int_eq(gw_auth_allows(NULL, gw_registry_at(reg, 0)), 1);
    gw_auth_free(a);
    gw_registry_free(reg);
    gw_conf_free(conf);
    gw_auth_free(NULL);
}
END_TEST

/* ------------------------------------------------------------------ models ---- */

START_TEST(test_allow_list)
{
    fixture_t f = load();
    gw_auth_key_t *alpha = gw_auth_find(f.auth, "sk-alpha", 8);
    gw_auth_key_t *beta = gw_auth_find(f.auth, "sk-beta", 7);
    gw_model_t *qwen = gw_registry_find(f.reg, "qwen", 4);
    gw_model_t *llama = gw_registry_find(f.reg, "llama", 5);
    gw_model_t *gemma = gw_registry_find(f.reg, "gemma", 5);

    /* no list: every model */
    ck_assert_int_eq(gw_auth_allows(alpha, qwen), 1);
    ck_assert_int_eq(gw_auth_allows(alpha, llama), 1);
    ck_assert_int_eq(gw_auth_allows(alpha, gemma), 1);
    /* listed by alias: the model under all its names (names resolve to models) */
    ck_assert_int_eq(gw_auth_allows(beta, qwen), 1);
    ck_assert_ptr_eq(gw_registry_find(f.reg, "gpt-4o", 6), qwen);
    ck_assert_int_eq(gw_auth_allows(beta, gemma), 1);
    ck_assert_int_eq(gw_auth_allows(beta, llama), 0);
    ck_assert_int_eq(gw_auth_allows(beta, NULL), 0);
    unload(&f);
}
END_TEST

START_TEST(test_concurrency)
{
    fixture_t f = load();
    gw_auth_key_t *alpha = gw_auth_find(f.auth, "sk-alpha", 8);
    gw_auth_key_t *beta = gw_auth_find(f.auth, "sk-beta", 7);
    gw_auth_key_t *gamma = gw_auth_find(f.auth, "sk-gamma", 8);
    int i;

    ck_assert_uint_eq(gw_auth_max_concurrent(beta), 2);
    ck_assert_int_eq(gw_auth_acquire(beta), 1);
    ck_assert_int_eq(gw_auth_acquire(beta), 1);
    ck_assert_int_eq(gw_auth_acquire(beta), 0); /* full */
    ck_assert_int_eq(gw_auth_acquire(gamma), 1); /* slots are per key */
    ck_assert_int_eq(gw_auth_acquire(gamma), 0);
    gw_auth_release(beta);
    ck_assert_int_eq(gw_auth_acquire(beta), 1);
    ck_assert_int_eq(gw_auth_acquire(beta), 0);
    gw_auth_release(beta);
    gw_auth_release(beta);
    gw_auth_release(gamma);
    ck_assert_uint_eq(atomic_load(&beta->inflight), 0);
    /* max_concurrent 0: no limit */
    for (i = 0; i < 1000; i++)
        ck_assert_int_eq(gw_auth_acquire(alpha), 1);
    for (i = 0; i < 1000; i++)
        gw_auth_release(alpha);
    ck_assert_uint_eq(atomic_load(&alpha->inflight), 0);
    unload(&f);
}
END_TEST

/* ------------------------------------------------------------------ keygen ---- */

START_TEST(test_keygen_format)
{
    char a[GW_AUTH_KEY_LEN + 1], b[GW_AUTH_KEY_LEN + 1], small[GW_AUTH_KEY_LEN];

    ck_assert_int_eq(gw_auth_keygen(a, sizeof(a)), GW_OK);
    ck_assert_int_eq(gw_auth_keygen(b, sizeof(b)), GW_OK);
    ck_assert_uint_eq(strlen(a), GW_AUTH_KEY_LEN);
    ck_assert_int_eq(strncmp(a, "sk-gw-", 6), 0);
    ck_assert_uint_eq(strspn(a + 6, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789-_"),
                      43);
    /* the last character carries 2 bits of the 256 plus 4 zero bits */
    ck_assert_ptr_nonnull(strchr("AEIMQUYcgkosw048", a[GW_AUTH_KEY_LEN - 1]));
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(gw_auth_keygen(small, sizeof(small)), GW_EINTERNAL);
}
END_TEST

/* The printed entry is the SHA-256 of the printed key, and it loads. */
START_TEST(test_keygen_main)
{
    char *text = NULL, key[128], name[80], hex[80], json[512];
    size_t size = 0;
    FILE *out = open_memstream(&text, &size), *err = fopen("/dev/null", "w");
    char want[65];
    gw_conf_t *conf;
    gw_errbuf_t eb;

    ck_assert_int_eq(gw_auth_keygen_main("web-ui", out, err), 0);
    fclose(out);
    ck_assert_int_eq(sscanf(text, "# %*[^\n]\n%127s\n# %*[^\n]\n\"%79[^\"]\": {\"sha256\": \"%79[^\"]\"}",
                            key, name, hex),
                     3);
    ck_assert_str_eq(name, "web-ui");
    hex_of(key, want);
    ck_assert_str_eq(hex, want);
    snprintf(json, sizeof(json),
             "{\"models\": {\"q\": {\"upstream\": \"http://h\"}}, \"auth\": {\"keys\": {%s}}}",
             strstr(text, "\n\"web-ui\"") + 1);
    memset(&eb, 0, sizeof(eb));
    ck_assert_msg(gw_conf_load_text(json, strlen(json), &conf, &eb) == GW_OK, "%s", eb.msg);
    gw_conf_free(conf);
    free(text);

    ck_assert_int_eq(gw_auth_keygen_main("bad name", stdout, err), 2);
    ck_assert_int_eq(gw_auth_keygen_main("", stdout, err), 2);
    ck_assert_int_eq(gw_auth_keygen_main(NULL, stdout, err), 2);
    fclose(err);
}
END_TEST

static Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc;

    tc = tcase_create("hash");
    tcase_add_test(tc, test_sha256_vectors);
    tcase_add_test(tc, test_sha256_length);
    suite_add_tcase(s, tc);

    tc = tcase_create("headers");
    tcase_add_loop_test(tc, test_extract, 0,
                        (int)(sizeof(extract_rows) / sizeof(extract_rows[0])));
    tcase_add_test(tc, test_extract_length_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("keys");
    tcase_add_test(tc, test_find);
    tcase_add_test(tc, test_find_constant_path);
    tcase_add_test(tc, test_no_keys);
    tcase_add_test(tc, test_allow_list);
    tcase_add_test(tc, test_concurrency);
    suite_add_tcase(s, tc);

    tc = tcase_create("keygen");
    tcase_add_test(tc, test_keygen_format);
    tcase_add_test(tc, test_keygen_main);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(auth_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
