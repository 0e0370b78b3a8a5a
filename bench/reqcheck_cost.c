/*
 * reqcheck_cost.c - CPU per request of the OpenAI request checks: the jansson tree path
 * (gw_oai_parse) against the tree-free fast path (gw_oai_check), in-process.
 *
 *   reqcheck_cost [--repeats R] [--budget-ms MS]
 *
 * Three chat bodies, built deterministically:
 *  - small: a 220-byte chat request (system + user message, max_tokens, temperature,
 *    stream), the size perf was taken on;
 *  - 100k-ascii: one user message of about 100 KB of English-like text with \n and \"
 *    escapes;
 *  - 100k-utf8: the same size of mixed Latin, Cyrillic, CJK and emoji text (the checker's
 *    multi-byte path rather than its 8-bytes-at-a-time ASCII path).
 *
 * For each body and each path, R runs (default 7) of N calls, N chosen so that one run of
 * the tree path takes about MS milliseconds (default 200); ns per call by CLOCK_MONOTONIC,
 * the median run reported. What is timed is what h_oai does per request:
 *  - tree: gw_oai_parse, json_object_get of "model" and "stream", json_decref;
 *  - fast: gw_oai_check.
 * Before timing, both paths must accept every body and agree on the model and stream.
 * Prints a table and one JSON line (last line of stdout). Single-threaded.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/jcheck.h"
#include "openai/request.h"

typedef struct body {
    const char *name;
    char *p;
    size_t len;
} body_t;

static volatile size_t sink;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------------------------
 * Bodies
 * ------------------------------------------------------------------------------- */

static body_t make_small(void)
{
    static const char s[] =
        "{\"model\":\"qwen2.5-7b\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a "
        "helpful assistant.\"},{\"role\":\"user\",\"content\":\"Write a haiku about the sea "
        "at night, please now.\"}],\"max_tokens\":64,\"temperature\":0.7,\"stream\":true}";
    body_t b = {"small", NULL, sizeof(s) - 1};

    b.p = malloc(b.len);
    memcpy(b.p, s, b.len);
    return b;
}

/* A chat body whose user message is `target` bytes of pieces[] in a fixed order. */
static body_t make_big(const char *name, const char *const *pieces, size_t n_pieces,
                       size_t target)
{
    static const char head[] =
        "{\"model\":\"qwen2.5-7b\",\"messages\":[{\"role\":\"user\",\"content\":\"";
    static const char tail[] = "\"}],\"max_tokens\":64,\"stream\":false}";
    body_t b = {name, NULL, 0};
    size_t cap = target + 256, i = 0;

    b.p = malloc(cap);
    memcpy(b.p, head, sizeof(head) - 1);
    b.len = sizeof(head) - 1;
    while (b.len < target) {
        const char *s = pieces[(i * 7 + i / 3) % n_pieces];
        size_t n = strlen(s);

        memcpy(b.p + b.len, s, n);
        b.len += n;
        i++;
    }
    memcpy(b.p + b.len, tail, sizeof(tail) - 1);
    b.len += sizeof(tail) - 1;
    return b;
}

static const char *const ascii_pieces[] = {
    "The quick brown fox ", "jumps over the lazy dog. ", "In 1999, ", "\\\"quoted\\\" ",
    "and then\\n", "a list: 1, 2, 3; ", "prices rose by 4.5% ", "under the bridge ",
    "(see section 12) ", "well-known ", "it's fine ", "\\n\\n",
};

static const char *const utf8_pieces[] = {
    "Caf\xc3\xa9 cr\xc3\xa8me ", "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 ",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e ", "\xf0\x9f\x98\x80 ", "na\xc3\xafve ",
    "\xce\xb1\xce\xb2\xce\xb3 ", "plain ascii words ", "\\n",
};

/* ---------------------------------------------------------------------------------
 * The two paths, as h_oai runs them
 * ------------------------------------------------------------------------------- */

static size_t run_tree(const body_t *b)
{
    json_t *root = NULL;
    size_t r;

    if (gw_oai_parse(b->p, b->len, GW_OAI_CHAT, &root, NULL) != GW_OK)
        abort();
    r = json_string_length(json_object_get(root, "model")) +
        (size_t)json_is_true(json_object_get(root, "stream"));
    json_decref(root);
    return r;
}

static size_t run_fast(const body_t *b)
{
    gw_oai_fast_t f;

    if (!gw_oai_check(b->p, b->len, GW_OAI_CHAT, GW_JCHECK_MAX_DEPTH, &f))
        abort();
    return f.model_len + (size_t)f.stream;
}

typedef size_t (*path_fn)(const body_t *b);

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Median over `repeats` runs of ns per call. */
static double measure(path_fn fn, const body_t *b, size_t iters, size_t repeats)
{
    double runs[64];
    size_t r, i;

    for (r = 0; r < repeats; r++) {
        uint64_t t0 = now_ns();
        size_t acc = 0;

        for (i = 0; i < iters; i++)
            acc += fn(b);
        runs[r] = (double)(now_ns() - t0) / (double)iters;
        sink += acc;
    }
    qsort(runs, repeats, sizeof(runs[0]), cmp_double);
    return runs[repeats / 2];
}

int main(int argc, char **argv)
{
    size_t repeats = 7, budget_ms = 200, i;
    body_t bodies[3];
    double tree_ns[3], fast_ns[3];

    for (i = 1; i < (size_t)argc; i++) {
        if (strcmp(argv[i], "--repeats") == 0 && i + 1 < (size_t)argc)
            repeats = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--budget-ms") == 0 && i + 1 < (size_t)argc)
            budget_ms = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--repeats R] [--budget-ms MS]\n", argv[0]);
            return 2;
        }
    }
    if (repeats < 1 || repeats > 64 || budget_ms < 1) {
        fprintf(stderr, "repeats must be 1..64, budget-ms >= 1\n");
        return 2;
    }
    json_object_seed(1);
    bodies[0] = make_small();
    bodies[1] = make_big("100k-ascii", ascii_pieces, sizeof(ascii_pieces) / sizeof(*ascii_pieces),
                         100 * 1024);
    bodies[2] = make_big("100k-utf8", utf8_pieces, sizeof(utf8_pieces) / sizeof(*utf8_pieces),
                         100 * 1024);

    printf("reqcheck_cost: gw_oai_parse (tree) vs gw_oai_check (fast), chat bodies, median of "
           "%zu runs, CLOCK_MONOTONIC\n\n",
           repeats);
    printf("%-12s %9s %9s %14s %14s %9s\n", "body", "bytes", "calls/run", "tree ns/call",
           "fast ns/call", "speedup");
    for (i = 0; i < 3; i++) {
        const body_t *b = &bodies[i];
        uint64_t t0;
        size_t iters, k;

        if (run_tree(b) != run_fast(b)) /* both accept, same model length and stream */
            abort();
        /* calibrate: calls of the tree path in one budget */
        t0 = now_ns();
        for (k = 0; k < 16; k++)
            sink += run_tree(b);
        iters = (size_t)((double)budget_ms * 1e6 / ((double)(now_ns() - t0) / 16.0));
        if (iters < 16)
            iters = 16;
        tree_ns[i] = measure(run_tree, b, iters, repeats);
        fast_ns[i] = measure(run_fast, b, iters, repeats);
        printf("%-12s %9zu %9zu %14.0f %14.0f %8.1fx\n", b->name, b->len, iters, tree_ns[i],
               fast_ns[i], tree_ns[i] / fast_ns[i]);
    }
    printf("\n{\"bench\":\"reqcheck_cost\",\"repeats\":%zu", repeats);
    for (i = 0; i < 3; i++)
        printf(",\"%s\":{\"bytes\":%zu,\"tree_ns\":%.0f,\"fast_ns\":%.0f}", bodies[i].name,
               bodies[i].len, tree_ns[i], fast_ns[i]);
    printf("}\n");
    for (i = 0; i < 3; i++)
        free(bodies[i].p);
    return 0;
}
