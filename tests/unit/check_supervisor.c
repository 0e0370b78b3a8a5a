/*
 * check_supervisor.c - unit tests for the supervisor's pure policy (backend/supervisor.c):
 * the restart backoff schedule and the choice of models to evict for a swap. The
 * process side (spawn, readiness, stops) is covered by tests/integration/test_lifecycle.py
 * and check_spawn.c.
 */
#include <check.h>
#include <stdlib.h>

#include "backend/supervisor.h"

START_TEST(test_backoff_schedule)
{
    /* no failure: start at once; then initial, doubling, capped */
    ck_assert_uint_eq(gw_supervisor_backoff_ms(0, 1000, 60000), 0);
    ck_assert_uint_eq(gw_supervisor_backoff_ms(1, 1000, 60000), 1000);
    ck_assert_uint_eq(gw_supervisor_backoff_ms(2, 1000, 60000), 2000);
    ck_assert_uint_eq(gw_supervisor_backoff_ms(3, 1000, 60000), 4000);
    ck_assert_uint_eq(gw_supervisor_backoff_ms(6, 1000, 60000), 32000);
    ck_assert_uint_eq(gw_supervisor_backoff_ms(7, 1000, 60000), 60000);
    ck_assert_uint_eq(gw_supervisor_backoff_ms(8, 1000, 60000), 60000);
    /* no overflow however many failures */
    ck_assert_uint_eq(gw_supervisor_backoff_ms(4000000000u, 86400000, 86400000), 86400000);
    ck_assert_uint_eq(gw_supervisor_backoff_ms(100, 1, 86400000), 86400000);
    /* initial == max: flat */
    ck_assert_uint_eq(gw_supervisor_backoff_ms(5, 500, 500), 500);
    /* a cap that is not a power-of-two multiple */
    ck_assert_uint_eq(gw_supervisor_backoff_ms(3, 300, 1000), 1000);
    ck_assert_uint_eq(gw_supervisor_backoff_ms(2, 300, 1000), 600);
}
END_TEST

/* The schedule grows monotonically until the cap. */
START_TEST(test_backoff_monotonic)
{
    uint64_t prev = 0, d;
    unsigned f;

    for (f = 0; f < 64; f++) {
        d = gw_supervisor_backoff_ms(f, 150, 5000);
        ck_assert_uint_ge(d, prev);
        ck_assert_uint_le(d, 5000);
        if (f >= 1 && prev < 2500 && f > 1)
            ck_assert_uint_eq(d, prev * 2);
        prev = d;
    }
}
END_TEST

#define C(vram, used, idle) {(vram), (used), (idle)}

static size_t pick(const gw_sup_cand_t *c, size_t n, unsigned need, size_t *out)
{
    return gw_supervisor_pick_victims(c, n, need, out);
}

START_TEST(test_victims_lru_order)
{
    /* used at 30, 10, 20: the oldest goes first */
    const gw_sup_cand_t c[] = {C(400, 30, 1), C(400, 10, 1), C(400, 20, 1)};
    size_t out[3];

    ck_assert_uint_eq(pick(c, 3, 400, out), 1);
    ck_assert_uint_eq(out[0], 1);
    ck_assert_uint_eq(pick(c, 3, 401, out), 2);
    ck_assert_uint_eq(out[0], 1);
    ck_assert_uint_eq(out[1], 2);
    ck_assert_uint_eq(pick(c, 3, 1200, out), 3);
    ck_assert_uint_eq(out[0], 1);
    ck_assert_uint_eq(out[1], 2);
    ck_assert_uint_eq(out[2], 0);
}
END_TEST

START_TEST(test_victims_never_busy)
{
    /* the oldest is busy: skipped, whatever its size */
    const gw_sup_cand_t c[] = {C(8000, 1, 0), C(3400, 5, 1), C(5500, 9, 1)};
    size_t out[3];

    ck_assert_uint_eq(pick(c, 3, 3000, out), 1);
    ck_assert_uint_eq(out[0], 1);
    ck_assert_uint_eq(pick(c, 3, 8900, out), 2);
    /* not enough even with every idle one: stop nothing (it would not help) */
    ck_assert_uint_eq(pick(c, 3, 8901, out), 0);
}
END_TEST

START_TEST(test_victims_drops_unneeded)
{
    /* LRU order 4B (3400), then 12B (8000); 8000 needed: the 12B alone is enough, so the
     * 4B is not stopped for nothing */
    const gw_sup_cand_t c[] = {C(8000, 20, 1), C(3400, 10, 1)};
    size_t out[2];

    ck_assert_uint_eq(pick(c, 2, 8000, out), 1);
    ck_assert_uint_eq(out[0], 0);
    /* 8001: both are needed */
    ck_assert_uint_eq(pick(c, 2, 8001, out), 2);
    ck_assert_uint_eq(out[0], 1);
    ck_assert_uint_eq(out[1], 0);
}
END_TEST

START_TEST(test_victims_edge_cases)
{
    const gw_sup_cand_t c[] = {C(0, 1, 1), C(100, 2, 1), C(100, 2, 1)};
    size_t out[3];

    ck_assert_uint_eq(pick(c, 3, 0, out), 0);   /* nothing needed */
    ck_assert_uint_eq(pick(NULL, 0, 10, out), 0); /* no candidates */
    /* a model without vram_mb frees nothing: never a victim */
    ck_assert_uint_eq(pick(c, 3, 100, out), 1);
    ck_assert_uint_eq(out[0], 1); /* ties keep index order */
    ck_assert_uint_eq(pick(c, 3, 200, out), 2);
}
END_TEST

/* The homelab budget: 16000 MB with 4B + 8B + 12B... loaded; a 27B (16000) needs all. */
START_TEST(test_victims_homelab)
{
    const gw_sup_cand_t c[] = {
        C(3400, 100, 1), /* gemma3-4b, oldest */
        C(5500, 300, 1), /* qwen2.5-7b */
        C(5500, 200, 1), /* llama3.1-8b */
    };
    size_t out[3];

    /* 14400 in use, 1600 free; a 12B (8000) needs 6400 more: 4B (3400) then llama
     * (5500) = 8900; newest first, llama is needed (3400 < 6400), the 4B too (5500 <
     * 6400): both go, qwen (most recent) stays */
    ck_assert_uint_eq(pick(c, 3, 6400, out), 2);
    ck_assert_uint_eq(out[0], 0);
    ck_assert_uint_eq(out[1], 2);
    /* the 27B needs everything */
    ck_assert_uint_eq(pick(c, 3, 14400, out), 3);
}
END_TEST

START_TEST(test_state_names)
{
    ck_assert_str_eq(gw_proc_state_name(GW_PROC_STOPPED), "stopped");
    ck_assert_str_eq(gw_proc_state_name(GW_PROC_STARTING), "starting");
    ck_assert_str_eq(gw_proc_state_name(GW_PROC_READY), "ready");
    ck_assert_str_eq(gw_proc_state_name(GW_PROC_FAILED), "failed");
    ck_assert_str_eq(gw_proc_state_name(GW_PROC_STOPPING), "stopping");
    ck_assert_str_eq(gw_proc_state_name((gw_proc_state_t)99), "stopped");
}
END_TEST

static Suite *supervisor_suite(void)
{
    Suite *s = suite_create("supervisor");
    TCase *tc;

    tc = tcase_create("backoff");
    tcase_add_test(tc, test_backoff_schedule);
    tcase_add_test(tc, test_backoff_monotonic);
    suite_add_tcase(s, tc);

    tc = tcase_create("eviction");
    tcase_add_test(tc, test_victims_lru_order);
    tcase_add_test(tc, test_victims_never_busy);
    tcase_add_test(tc, test_victims_drops_unneeded);
    tcase_add_test(tc, test_victims_edge_cases);
    tcase_add_test(tc, test_victims_homelab);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_test(tc, test_state_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(supervisor_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
