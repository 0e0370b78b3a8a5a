/*
 * check_registry.c - unit tests for the model registry (backend/registry.c).
 *
 * Built from a configuration loaded with gw_conf_load_text: models in file order, each
 * found by its name and by every alias, with exact length matching (a prefix, an
 * extension, a name cut by len, or bytes after an embedded NUL never match), fresh
 * state counters, index/at bounds, an empty registry, and the state names.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "backend/registry.h"

static const char conf_text[] =
    "{\"models\":{"
    "\"a\":{\"upstream\":\"http://h:1\",\"aliases\":[\"abc\",\"gpt-4o\"]},"
    "\"ab\":{\"upstream\":\"http://h:2\"},"
    "\"qwen\":{\"upstream\":\"http://h:3\",\"aliases\":[\"gpt-4o-mini\",\"q\"]}}}";

static gw_conf_t *conf;
static gw_registry_t *reg;

static void setup(void)
{
    gw_errbuf_t err = {{0}, {0}};

    ck_assert_msg(gw_conf_load_text(conf_text, strlen(conf_text), &conf, &err) == GW_OK, "%s",
                  err.msg);
    reg = gw_registry_new(conf);
    ck_assert_ptr_nonnull(reg);
}

static void teardown(void)
{
    gw_registry_free(reg);
    gw_conf_free(conf);
    reg = NULL;
    conf = NULL;
}

/* The model found for (name, len), by its configured name; NULL if none. */
static const char *find(const char *name, size_t len)
{
    gw_model_t *m = gw_registry_find(reg, name, len);

    return m ? m->conf->name : NULL;
}

#define FIND(lit) find(lit, sizeof(lit) - 1)

START_TEST(test_models_in_order)
{
    size_t i;
    static const char *const names[] = {"a", "ab", "qwen"};

    ck_assert_uint_eq(gw_registry_count(reg), 3);
    for (i = 0; i < 3; i++) {
        gw_model_t *m = gw_registry_at(reg, i);

        ck_assert_ptr_nonnull(m);
        ck_assert_str_eq(m->conf->name, names[i]);
        ck_assert_ptr_eq(m->conf, &conf->models[i]);
        ck_assert_uint_eq(m->index, i);
        ck_assert_int_eq(atomic_load(&m->state), GW_MODEL_UNKNOWN);
        ck_assert_int_eq(atomic_load(&m->inflight), 0);
        ck_assert_uint_eq(atomic_load(&m->requests), 0);
    }
    ck_assert_ptr_null(gw_registry_at(reg, 3));
    ck_assert_ptr_null(gw_registry_at(reg, (size_t)-1));
}
END_TEST

START_TEST(test_find_by_name_and_alias)
{
    ck_assert_str_eq(FIND("a"), "a");
    ck_assert_str_eq(FIND("ab"), "ab");
    ck_assert_str_eq(FIND("qwen"), "qwen");
    ck_assert_str_eq(FIND("abc"), "a");
    ck_assert_str_eq(FIND("gpt-4o"), "a");
    ck_assert_str_eq(FIND("gpt-4o-mini"), "qwen");
    ck_assert_str_eq(FIND("q"), "qwen");
    /* the same object each time */
    ck_assert_ptr_eq(gw_registry_find(reg, "q", 1), gw_registry_at(reg, 2));
    ck_assert_ptr_eq(gw_registry_find(reg, "abc", 3), gw_registry_at(reg, 0));
}
END_TEST

START_TEST(test_exact_length)
{
    /* "ab" is a model of its own, not "a" */
    ck_assert_str_eq(FIND("ab"), "ab");
    /* prefixes and extensions of names and aliases */
    ck_assert_ptr_null(FIND(""));
    ck_assert_ptr_null(FIND("qwe"));
    ck_assert_ptr_null(FIND("qwen2"));
    ck_assert_ptr_null(FIND("abcd"));
    ck_assert_ptr_null(FIND("gpt-4"));
    ck_assert_ptr_null(FIND("gpt-4o-"));
    ck_assert_ptr_null(FIND("gpt-4o-mini-2024"));
    ck_assert_ptr_null(FIND("A"));
    ck_assert_ptr_null(FIND("Qwen"));
    /* len decides, not a NUL: a longer buffer cut by len matches its prefix */
    ck_assert_str_eq(find("abc", 1), "a");
    ck_assert_str_eq(find("abc", 2), "ab");
    ck_assert_str_eq(find("qwenXYZ", 4), "qwen");
    ck_assert_str_eq(find("gpt-4o-mini", 6), "a");
    ck_assert_ptr_null(find("qwenXYZ", 3));
    /* bytes after an embedded NUL are part of the name */
    ck_assert_ptr_null(find("a\0", 2));
    ck_assert_ptr_null(find("qwen\0x", 6));
    ck_assert_ptr_null(find("q\0", 2));
}
END_TEST

START_TEST(test_state_fields)
{
    gw_model_t *m = gw_registry_find(reg, "qwen", 4);

    atomic_store(&m->state, GW_MODEL_LOADING);
    atomic_fetch_add(&m->inflight, 2);
    atomic_fetch_add(&m->requests, 5);
    m = gw_registry_find(reg, "q", 1);
    ck_assert_int_eq(atomic_load(&m->state), GW_MODEL_LOADING);
    ck_assert_int_eq(atomic_load(&m->inflight), 2);
    ck_assert_uint_eq(atomic_load(&m->requests), 5);
    ck_assert_int_eq(atomic_load(&gw_registry_at(reg, 0)->state), GW_MODEL_UNKNOWN);
}
END_TEST

START_TEST(test_empty_registry)
{
    gw_conf_t empty;
    gw_registry_t *r;

    memset(&empty, 0, sizeof(empty));
    r = gw_registry_new(&empty);
    ck_assert_uint_eq(gw_registry_count(r), 0);
    ck_assert_ptr_null(gw_registry_at(r, 0));
    ck_assert_ptr_null(gw_registry_find(r, "a", 1));
    ck_assert_ptr_null(gw_registry_find(r, "", 0));
    gw_registry_free(r);
    gw_registry_free(NULL);
}
END_TEST

START_TEST(test_state_names)
{
    ck_assert_str_eq(gw_model_state_name(GW_MODEL_UNKNOWN), "unknown");
    ck_assert_str_eq(gw_model_state_name(GW_MODEL_READY), "ready");
    ck_assert_str_eq(gw_model_state_name(GW_MODEL_LOADING), "loading");
    ck_assert_str_eq(gw_model_state_name(GW_MODEL_UNREACHABLE), "unreachable");
    ck_assert_str_eq(gw_model_state_name((gw_model_state_t)99), "unknown");
    ck_assert_str_eq(gw_model_state_name((gw_model_state_t)-1), "unknown");
}
END_TEST

static Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("lookup");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_models_in_order);
    tcase_add_test(tc, test_find_by_name_and_alias);
    tcase_add_test(tc, test_exact_length);
    tcase_add_test(tc, test_state_fields);
    suite_add_tcase(s, tc);

    tc = tcase_create("misc");
    tcase_add_test(tc, test_empty_registry);
    tcase_add_test(tc, test_state_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(registry_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
