/* tokcache.c - vocabulary fetch (GET /v1/models for n_vocab, then one POST /tokenize of
 * every id with with_pieces) and its single-flight cache. */
#include "upstream/tokcache.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/supervisor.h"
#include "core/alloc.h"
#include "upstream/fetch.h"

#define GW_MAX_VOCAB (2u * 1024 * 1024)
#define GW_MAX_VOCAB_ANSWER (256u * 1024 * 1024)

typedef struct entry {
    gw_tokcache_t *tc;
    gw_model_t *model;
    gw_vocab_t *vocab;
    gw_fetch_t *fetch;      /* in flight, or NULL */
    size_t n_vocab;
    signed char *special;   /* per id: -1 unknown, 0, 1 */
    long pid;               /* spawned backend's process when the vocabulary was fetched */
    gw_tokcache_waiter_t *waiters;
} entry_t;

struct gw_tokcache {
    gw_upstream_t *up;
    entry_t *e;
    size_t n;
    long timeout_ms;
    unsigned long fetches;
};

gw_tokcache_t *gw_tokcache_new(gw_upstream_t *u, gw_registry_t *reg, long timeout_ms)
{
    gw_tokcache_t *tc = gw_xcalloc(1, sizeof(*tc));
    size_t i;

    tc->up = u;
    tc->timeout_ms = timeout_ms;
    tc->n = gw_registry_count(reg);
    tc->e = gw_xcalloc(tc->n ? tc->n : 1, sizeof(entry_t));
    for (i = 0; i < tc->n; i++) {
        tc->e[i].tc = tc;
        tc->e[i].model = gw_registry_at(reg, i);
    }
    return tc;
}

void gw_tokcache_free(gw_tokcache_t *tc)
{
    size_t i;

    if (tc == NULL)
        return;
    for (i = 0; i < tc->n; i++) {
        gw_fetch_cancel(tc->e[i].fetch);
        gw_vocab_unref(tc->e[i].vocab);
        free(tc->e[i].special);
    }
    free(tc->e);
    free(tc);
}

unsigned long gw_tokcache_fetches(const gw_tokcache_t *tc)
{
    return tc->fetches;
}

static void finish(entry_t *e, const char *err, long status)
{
    gw_tokcache_waiter_t *w = e->waiters, *next;

    e->waiters = NULL;
    for (; w; w = next) {
        next = w->next;
        w->queued = 0;
        w->cb(w, e->vocab, err, status);
    }
}

static void on_pieces(gw_fetch_t *f, void *data)
{
    entry_t *e = data;
    gw_errbuf_t err;
    char msg[1024];

    e->fetch = NULL;
    if (f->rc != CURLE_OK || f->status != 200) {
        char why[300];

        long st = f->rc == CURLE_OK ? f->status : 0;

        snprintf(msg, sizeof(msg), "tokenizer of model '%s' failed: %s", e->model->conf->name,
                 gw_fetch_error(f, why, sizeof(why)));
        gw_fetch_free(f);
        finish(e, msg, st);
        return;
    }
    e->vocab = gw_vocab_from_json(f->body.ptr, f->body.len, e->n_vocab, &err);
    gw_fetch_free(f);
    free(e->special);
    e->special = NULL;
    if (e->vocab) {
        e->special = gw_xmalloc(e->n_vocab);
        memset(e->special, -1, e->n_vocab);
    }
    if (e->vocab == NULL) {
        snprintf(msg, sizeof(msg), "tokenizer of model '%s': %s", e->model->conf->name, err.msg);
        finish(e, msg, 0);
        return;
    }
    finish(e, NULL, 0);
}

static void on_models(gw_fetch_t *f, void *data)
{
    entry_t *e = data;
    json_t *root = NULL, *nv;
    char msg[1024], why[300];
    gw_buf_t body;
    size_t i;

    e->fetch = NULL;
    if (f->rc != CURLE_OK || f->status != 200) {
        long st = f->rc == CURLE_OK ? f->status : 0;

        snprintf(msg, sizeof(msg), "cannot read the vocabulary size of model '%s': %s",
                 e->model->conf->name, gw_fetch_error(f, why, sizeof(why)));
        gw_fetch_free(f);
        finish(e, msg, st);
        return;
    }
    root = json_loadb(f->body.ptr, f->body.len, 0, NULL);
    gw_fetch_free(f);
    nv = json_object_get(json_object_get(json_array_get(json_object_get(root, "data"), 0), "meta"),
                         "n_vocab");
    if (!json_is_integer(nv) || json_integer_value(nv) <= 0 ||
        json_integer_value(nv) > (json_int_t)GW_MAX_VOCAB) {
        json_decref(root);
        snprintf(msg, sizeof(msg), "backend of model '%s' reports no usable data[0].meta.n_vocab "
                 "in /v1/models", e->model->conf->name);
        finish(e, msg, 0);
        return;
    }
    e->n_vocab = (size_t)json_integer_value(nv);
    json_decref(root);

    gw_buf_init(&body, 16u * 1024 * 1024);
    gw_buf_adds(&body, "{\"with_pieces\":true,\"content\":[");
    for (i = 0; i < e->n_vocab; i++)
        gw_buf_addf(&body, i ? ",%zu" : "%zu", i);
    gw_buf_adds(&body, "]}");
    e->fetch = gw_fetch_start(e->tc->up, e->model->upstream, "/tokenize", body.ptr, body.len,
                              e->model->conf->api_key, e->tc->timeout_ms, GW_MAX_VOCAB_ANSWER,
                              on_pieces, e);
    gw_buf_free(&body);
}

void gw_tokcache_get(gw_tokcache_t *tc, gw_model_t *m, gw_tokcache_waiter_t *w)
{
    entry_t *e = &tc->e[m->index];
    gw_sup_info_t info;

    /* a spawned backend that was restarted since (a new process) may be another build or
     * model file: its vocabulary is fetched again */
    gw_supervisor_info(m, &info);
    if (e->vocab && info.managed && info.pid != e->pid)
        gw_tokcache_invalidate(tc, m);
    if (e->vocab) {
        w->queued = 0;
        w->cb(w, e->vocab, NULL, 0);
        return;
    }
    w->next = e->waiters;
    e->waiters = w;
    w->queued = 1;
    if (e->fetch == NULL) {
        tc->fetches++;
        e->pid = info.managed ? info.pid : -1;
        e->fetch = gw_fetch_start(tc->up, m->upstream, "/v1/models", NULL, 0,
                                  m->conf->api_key, tc->timeout_ms, 16u * 1024 * 1024, on_models,
                                  e);
    }
}

void gw_tokcache_forget(gw_tokcache_t *tc, gw_model_t *m, gw_tokcache_waiter_t *w)
{
    entry_t *e = &tc->e[m->index];
    gw_tokcache_waiter_t **pp;

    if (!w->queued)
        return;
    for (pp = &e->waiters; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            w->queued = 0;
            return;
        }
    }
}

void gw_tokcache_invalidate(gw_tokcache_t *tc, gw_model_t *m)
{
    entry_t *e = &tc->e[m->index];

    gw_vocab_unref(e->vocab);
    e->vocab = NULL;
    free(e->special);
    e->special = NULL;
}

int gw_tokcache_special(gw_tokcache_t *tc, gw_model_t *m, int64_t id)
{
    entry_t *e = &tc->e[m->index];

    if (e->special == NULL || id < 0 || (size_t)id >= e->n_vocab)
        return -1;
    return e->special[id];
}

void gw_tokcache_set_special(gw_tokcache_t *tc, gw_model_t *m, int64_t id, int special)
{
    entry_t *e = &tc->e[m->index];

    if (e->special && id >= 0 && (size_t)id < e->n_vocab)
        e->special[id] = (signed char)(special ? 1 : 0);
}
