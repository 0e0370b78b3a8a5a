/*
 * client.h - the upstream I/O thread: one libcurl multi handle driven by its own epoll.
 *
 * Owns: the thread, the multi handle, an epoll set with curl's sockets, a timerfd for
 * curl's timeouts, a timerfd for per-transfer deadlines, and an eventfd that carries
 * commands from other threads. Knows nothing about HTTP semantics or JSON: a transfer
 * (gw_xfer_t) is an easy handle plus callbacks, embedded in its owner's object.
 *
 * Threads: gw_upstream_start/cancel/unpause and the watch calls may be called from any
 * thread. Every callback in gw_xfer_ops_t runs on the upstream thread, as do curl's
 * own callbacks set on the easy handle. Commands are processed in FIFO order, after
 * all I/O events of the same epoll batch, so a watch event never sees a released
 * transfer.
 */
#ifndef GW_UPSTREAM_CLIENT_H
#define GW_UPSTREAM_CLIENT_H

#include <curl/curl.h>
#include <stdint.h>

typedef struct gw_upstream gw_upstream_t;
typedef struct gw_xfer gw_xfer_t;

typedef struct gw_xfer_ops {
    /* The transfer ended (rc from curl, or the rc given to gw_upstream_abort). The easy
     * handle is out of the multi but still allocated. Called at most once. */
    void (*on_done)(gw_xfer_t *x, CURLcode rc);
    /* The watched client socket hung up (EPOLLRDHUP/HUP/ERR). */
    void (*on_hup)(gw_xfer_t *x);
    /* x->deadline_ms passed while the transfer was running. */
    void (*on_deadline)(gw_xfer_t *x);
    /* Last call: the client forgets x after a cancel; the owner may free it. */
    void (*on_release)(gw_xfer_t *x);
} gw_xfer_ops_t;

typedef void (*gw_upstream_fn)(void *arg);

typedef struct gw_upstream_cmd {
    int op;
    gw_xfer_t *x;
    gw_upstream_fn fn;          /* for calls */
    void *arg;
    struct gw_upstream_cmd *next;
} gw_upstream_cmd_t;

struct gw_xfer {
    CURL *easy;                 /* set by the owner before start; cleaned up by the client */
    const gw_xfer_ops_t *ops;
    uint64_t deadline_ms;       /* absolute gw_now_ms(); 0 = none. Upstream thread only. */
    /* Absolute gw_now_ms() by which the transfer must connect (0 = none), set by the owner
     * before start and ended by gw_upstream_connected(). Kept apart from deadline_ms: these
     * are short and almost always met within microseconds, so they are honoured through
     * the loop's epoll timeout (a FIFO, O(1)) rather than the lazily armed deadline timer,
     * which they would otherwise arm for a wake-up seconds later that finds nothing due. */
    uint64_t connect_deadline_ms;
    /* private to client.c */
    gw_xfer_t *cprev, *cnext;   /* connecting FIFO, ordered by connect_deadline_ms */
    int in_cfifo;
    int in_multi;
    int started;
    int watch_fd;               /* registered client fd, or -1 */
    gw_xfer_t *prev, *next;     /* active list (in multi) */
    gw_upstream_cmd_t cmd_start, cmd_cancel, cmd_unpause;
};

/* Monotonic milliseconds. */
uint64_t gw_now_ms(void);
uint64_t gw_now_us(void);

gw_upstream_t *gw_upstream_new(void);
/* Stops the thread; every started transfer must have been cancelled first. */
void gw_upstream_free(gw_upstream_t *u);

void gw_xfer_init(gw_xfer_t *x, const gw_xfer_ops_t *ops);

/* Queue the transfer to be added to the multi. Once per transfer. */
void gw_upstream_start(gw_upstream_t *u, gw_xfer_t *x);
/* Queue removal (if running) and release: on_release follows on the upstream thread.
 * Exactly once for every started transfer. */
void gw_upstream_cancel(gw_upstream_t *u, gw_xfer_t *x);
/* Queue curl_easy_pause(CONT). The owner guards against double posting. */
void gw_upstream_unpause(gw_upstream_t *u, gw_xfer_t *x);

/* Upstream thread: x has connected (curl's prereq callback); its connect deadline ends. */
void gw_upstream_connected(gw_upstream_t *u, gw_xfer_t *x);

/* Watch a client fd for hang-up on behalf of x (any thread; the caller serialises the
 * watch/unwatch pair per transfer, and unwatches before the fd is closed). */
int gw_upstream_watch(gw_upstream_t *u, gw_xfer_t *x, int fd);
void gw_upstream_unwatch(gw_upstream_t *u, gw_xfer_t *x);

/* Runs fn(arg) on the upstream thread, in FIFO order with the other commands. The
 * command node c is the caller's storage and must stay valid until fn has run. */
void gw_upstream_call(gw_upstream_t *u, gw_upstream_cmd_t *c, gw_upstream_fn fn, void *arg);

/* Upstream thread only. */
/* Adds x to the multi now (what a posted start does); on failure on_done follows. */
void gw_upstream_add(gw_upstream_t *u, gw_xfer_t *x);
void gw_upstream_abort(gw_upstream_t *u, gw_xfer_t *x, CURLcode rc);
void gw_upstream_set_deadline(gw_upstream_t *u, gw_xfer_t *x, uint64_t deadline_ms);

#endif
