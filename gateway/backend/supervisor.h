/*
 * supervisor.h - the backend processes of spawned models (models with a `command`).
 *
 * Owns one thread, every child process, and each spawned model's run-time state:
 *
 *   stopped --request, load, preload--> starting --/health 200--> ready
 *   ready --ttl, unload, eviction--> stopping --exit--> stopped
 *   starting --exit, start timeout, exec error--> failed (next start after a doubling backoff)
 *   ready --unexpected exit--> failed (the next request starts it again at once)
 *
 * The first request for a stopped model starts it and waits in a bounded per-model
 * queue; later ones join the queue; all are answered when /health says 200 or the start
 * fails. With a VRAM budget, a start that does not fit first stops the least recently
 * used idle models (never one with a request in flight or waiting) and waits, bounded,
 * for busy ones to go idle. Stops send SIGTERM to the process group and SIGKILL after
 * backends.stop_grace_ms. Child stdout and stderr go to the log, one line at a time,
 * prefixed with the model name.
 *
 * A request holds a *lease* on its model from a successful acquire until release: a
 * leased model is busy, so it is never stopped for a swap or for idleness. Models with a
 * fixed upstream are not managed: acquire answers at once and release does nothing.
 *
 * Threads. The verbs below may be called from any thread; they take the supervisor's
 * mutex briefly and never block on I/O (cancel may wait for a callback that is running).
 * Callbacks (gw_sup_wait_t.on_done, .on_tick) run on the supervisor thread without that
 * mutex, so they may call these verbs (except cancel on their own w) and take their own
 * locks. A caller may hold its own lock around acquire/load/unload even if its callbacks
 * take that lock (the order is then: caller's lock, supervisor's), but must not hold it
 * around cancel, which may wait for such a callback to return.
 */
#ifndef GW_BACKEND_SUPERVISOR_H
#define GW_BACKEND_SUPERVISOR_H

#include <stddef.h>
#include <stdint.h>

#include "backend/registry.h"
#include "conf/conf.h"
#include "core/err.h"

typedef struct gw_supervisor gw_supervisor_t;

/* Public states (a start waiting for VRAM shows as starting). */
typedef enum gw_proc_state {
    GW_PROC_STOPPED = 0,
    GW_PROC_STARTING,
    GW_PROC_READY,
    GW_PROC_FAILED,
    GW_PROC_STOPPING,
} gw_proc_state_t;

typedef struct gw_sup_wait gw_sup_wait_t;

/* The wait is over: rc GW_OK (for acquire: the lease is taken) or the
 * error, with msg naming the model and the reason (for the client; details are in the
 * log). msg is valid during the call only. */
typedef void (*gw_sup_done_cb)(gw_sup_wait_t *w, gw_err_t rc, const char *msg);
/* Still waiting: called every backends.loading_ping_ms (for SSE keep-alive comments). */
typedef void (*gw_sup_tick_cb)(gw_sup_wait_t *w);

/*
 * A waiter, embedded in the caller's object (find it with container_of). The caller
 * sets on_done (and on_tick, or NULL) before the call; the call sets the results. If
 * the call set `queued`, the caller must keep w alive and call gw_supervisor_cancel(w)
 * exactly once before freeing it, whether or not on_done has run.
 */
struct gw_sup_wait {
    gw_sup_done_cb on_done;
    gw_sup_tick_cb on_tick;
    /* result */
    int queued;       /* 1: on_done follows on the supervisor thread */
    /* private to supervisor.c */
    int kind, state, ticking;
    gw_err_t rc;
    char msg[320];
    gw_sup_wait_t *prev, *next, *fire_next, *tick_next;
};

/*
 * Creates the supervisor for the models of reg that have a command (sets their
 * gw_model_t.proc, and .upstream for those with ${PORT}: a free loopback port is picked
 * for each now and kept across restarts), starts its thread and the preload list. conf
 * and reg are borrowed
 * and must outlive it. Returns GW_OK, or an error with err filled (thread or epoll
 * creation failed).
 */
gw_err_t gw_supervisor_new(const gw_conf_t *conf, gw_registry_t *reg, gw_supervisor_t **out,
                           gw_errbuf_t *err);
/*
 * Stops every backend (SIGTERM to its group, SIGKILL after the grace), fails waiting
 * requests, reaps every child, joins the thread and frees. Call after the HTTP server
 * has stopped. NULL is a no-op.
 */
void gw_supervisor_free(gw_supervisor_t *s);

/*
 * A lease on m for one request. Returns GW_OK with w->queued == 0 when m is ready (or
 * not managed): the lease is taken; m->upstream is the URL to use. Returns GW_OK with
 * w->queued == 1 when m is starting (or was started by this call): on_done follows.
 * Errors, at once: GW_EOVERLOAD (the model's wait queue is full), GW_EBUSY (the model is
 * backing off after failed starts, or the gateway is shutting down); err says which.
 */
gw_err_t gw_supervisor_acquire(gw_model_t *m, gw_sup_wait_t *w, gw_errbuf_t *err);
/* Ends a lease taken by acquire (at once or through on_done with GW_OK). */
void gw_supervisor_release(gw_model_t *m);
/*
 * Withdraws a queued w. Returns 1 if w was still waiting (on_done will not be called),
 * 0 if on_done has run (waits for it to return if it is running). A no-op returning 0
 * for a w that was never queued.
 */
int gw_supervisor_cancel(gw_model_t *m, gw_sup_wait_t *w);

/* Like acquire, without a lease: start m if needed and report when it is ready. An
 * unmanaged model is GW_EPARAM. */
gw_err_t gw_supervisor_load(gw_model_t *m, gw_sup_wait_t *w, gw_errbuf_t *err);
/*
 * Stops m. GW_OK with w->queued == 0 when it is already stopped (a failed model is
 * reset to stopped and its backoff cleared); queued: on_done(GW_OK) once the process
 * has exited. GW_ECONFLICT when requests are in flight or waiting (a busy model is never
 * stopped; retry when it is idle). GW_EPARAM for an unmanaged model.
 */
gw_err_t gw_supervisor_unload(gw_model_t *m, gw_sup_wait_t *w, gw_errbuf_t *err);

typedef struct gw_sup_info {
    int managed;              /* 0: fixed upstream; nothing else is set */
    gw_proc_state_t state;
    long pid;                 /* -1 without a process */
    unsigned port;            /* 0 without a process */
    unsigned vram_mb;
    long inflight;            /* leases */
    size_t queued;            /* requests waiting for a start */
    unsigned failures;        /* consecutive failed starts */
    uint64_t retry_in_ms;     /* failed: time until the next start is allowed */
    char last_error[256];     /* why the last start failed or the backend exited; "" */
} gw_sup_info_t;

/* A snapshot of m's state. Any thread. */
void gw_supervisor_info(gw_model_t *m, gw_sup_info_t *out);
const char *gw_proc_state_name(gw_proc_state_t s);

/* ---- pure policy, exported for the unit tests ------------------------------------ */

/* Delay before start number failures+1: 0 after no failure, then initial, 2x, 4x, ...
 * capped at max_ms. */
uint64_t gw_supervisor_backoff_ms(unsigned failures, unsigned initial_ms, unsigned max_ms);

typedef struct gw_sup_cand {
    unsigned vram_mb;
    uint64_t last_used_ms; /* monotonic time of the last request's end */
    int idle;              /* ready, nothing in flight or waiting: may be stopped */
} gw_sup_cand_t;

/*
 * Which models to stop so that need_mb more MB become free: idle candidates in least
 * recently used order until they add up to need_mb, then, newest first, any of those
 * that turns out not to be needed is dropped again. Writes the chosen indexes to out
 * (oldest first) and returns how many; returns 0 (stop nothing) when need_mb is 0 or
 * all idle candidates together are not enough.
 */
size_t gw_supervisor_pick_victims(const gw_sup_cand_t *c, size_t n, unsigned need_mb, size_t *out);

#endif
