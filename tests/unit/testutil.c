/*
 * testutil.c - fixture loading and JSON comparison for the unit tests (testutil.h).
 */
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *gw_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    size_t cap = 0, n = 0, got;

    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    do {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 65536;
            p = realloc(p, cap + 1);
            ck_assert_ptr_nonnull(p);
        }
        got = fread(p + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    ck_assert_msg(!ferror(f), "%s: read error", path);
    fclose(f);
    p[n] = '\0';
    *len = n;
    return p;
}

char *gw_test_fixture(const char *rel, size_t *len)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/%s", GW_TEST_FIXTURES, rel);
    return gw_test_read_file(path, len);
}

void gw__test_json_eq(const char *got, const char *want, const char *file, int line)
{
    json_error_t e1, e2;
    json_t *g = json_loads(got, JSON_DECODE_ANY, &e1);
    json_t *w = json_loads(want, JSON_DECODE_ANY, &e2);
    char *gs, *ws;

    if (g == NULL || w == NULL) {
        char msg[512];

        snprintf(msg, sizeof(msg), "%s:%d: invalid JSON in %s: %s", file, line,
                 g ? "want" : "got", g ? e2.text : e1.text);
        json_decref(g);
        json_decref(w);
        ck_abort_msg("%s", msg);
    }
    if (!json_equal(g, w)) {
        /* Format, free, then fail: a failed check does not return. */
        char msg[4096];

        gs = json_dumps(g, JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_COMPACT);
        ws = json_dumps(w, JSON_SORT_KEYS | JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(msg, sizeof(msg), "%s:%d: JSON differs\n  got:  %s\n  want: %s", file, line,
                 gs, ws);
        free(gs);
        free(ws);
        json_decref(g);
        json_decref(w);
        ck_abort_msg("%s", msg);
    }
    json_decref(g);
    json_decref(w);
}

uint64_t gw_test_rand(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}
