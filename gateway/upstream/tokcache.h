/*
 * tokcache.h - per-backend tokenizer cache: the vocabulary (id -> piece) of each model,
 * fetched once with one batched tokenizer call, shared by every request, dropped when
 * the backend restarts.
 *
 * Upstream thread only. Concurrent misses for the same model share one fetch (single
 * flight): the first miss starts it, later ones queue as waiters.
 */
#ifndef GW_UPSTREAM_TOKCACHE_H
#define GW_UPSTREAM_TOKCACHE_H

#include "backend/registry.h"
#include "core/vocab.h"
#include "upstream/client.h"

typedef struct gw_tokcache gw_tokcache_t;
typedef struct gw_tokcache_waiter gw_tokcache_waiter_t;

/* v is borrowed (take a ref to keep it); NULL with err on failure, and then status is
 * the backend's HTTP status when it answered (503 while it loads), else 0. */
typedef void (*gw_tokcache_cb)(gw_tokcache_waiter_t *w, gw_vocab_t *v, const char *err,
                               long status);

struct gw_tokcache_waiter {
    gw_tokcache_cb cb;
    gw_tokcache_waiter_t *next;
    int queued;
};

gw_tokcache_t *gw_tokcache_new(gw_upstream_t *u, gw_registry_t *reg, long timeout_ms);
/* Cancels fetches in flight (waiters are not called) and frees. */
void gw_tokcache_free(gw_tokcache_t *tc);
/* Calls w->cb with the model's vocabulary, at once when cached, else when fetched. */
void gw_tokcache_get(gw_tokcache_t *tc, gw_model_t *m, gw_tokcache_waiter_t *w);
/* Removes a waiter that is still queued (its request went away). */
void gw_tokcache_forget(gw_tokcache_t *tc, gw_model_t *m, gw_tokcache_waiter_t *w);
/* Drops the cached vocabulary (the backend restarted or changed). */
void gw_tokcache_invalidate(gw_tokcache_t *tc, gw_model_t *m);
/* Whether llama-server renders id as "" in generated text (a control token): 1 yes,
 * 0 no, -1 not known yet. Valid only while the model's vocabulary is cached. */
int gw_tokcache_special(gw_tokcache_t *tc, gw_model_t *m, int64_t id);
void gw_tokcache_set_special(gw_tokcache_t *tc, gw_model_t *m, int64_t id, int special);
/* Fetches performed so far (for tests and metrics). */
unsigned long gw_tokcache_fetches(const gw_tokcache_t *tc);

#endif
