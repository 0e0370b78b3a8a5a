/*
 * guard.h - what a client must pass before the gateway does any work for it, and the
 * clocks that stop it from holding a connection forever.
 *
 * Owns, for the server: the API key set (auth.h), the CORS policy (cors.h), the TLS
 * material (tls.h), the libmicrohttpd options that enforce connection limits (per
 * client address, per-connection memory, TLS), and a connection table with a reaper
 * thread that enforces the request deadline.
 *
 * Per request (gw_guard_req_t, embedded in the server's request context) it decides,
 * from the request line and headers alone, whether the request is answered without
 * looking at its body: URL too long (414), too many or too large header fields (431),
 * a CORS preflight (204, no key needed), a missing or wrong key (401), or a key over
 * its concurrent-request limit (429). Model allow-lists are checked later, by the
 * handlers, once the model is known (gw_guard_allows).
 *
 * When no client has been connected for a second, the reaper returns freed heap to the
 * system (glibc malloc_trim), so that memory comes back down after a burst.
 *
 * Deadlines. Each connection is in one of three states: IDLE (accepted, or between
 * keep-alive requests), RECEIVING (the request line arrived; the rest of the request
 * must arrive within timeouts.request_ms of it) or BUSY (the request is complete; the
 * backend timeouts apply). IDLE and RECEIVING have a deadline of request_ms. The reaper
 * sleeps until the earliest deadline, rounded up to GW_GUARD_TICK_MS (and not at all
 * while every connection is BUSY); for an expired RECEIVING connection on plain HTTP it
 * writes a 408 OpenAI error with "Connection: close" straight to the socket (MHD is
 * only reading then, and cannot queue a response mid-body), then shuts the socket
 * down; MHD sees the end of the stream and closes the connection through its normal
 * path. Expired IDLE connections (and every expired connection under TLS, where only
 * GnuTLS may write) are shut down without a response. libmicrohttpd's own connection
 * timeout (the same request_ms, in seconds) closes connections that send nothing.
 * The socket is never closed here, so an fd number cannot be reused under the reaper:
 * entries are unlinked in MHD's "connection closed" notification, before MHD closes
 * the fd, under the same lock the reaper holds.
 *
 * Threads: gw_guard_new/free and the MHD option accessors on the starting thread; the
 * per-request calls on the MHD worker that owns the connection; the reaper is its own
 * thread and touches only the connection table (under the guard's mutex).
 */
#ifndef GW_HTTP_GUARD_H
#define GW_HTTP_GUARD_H

#include <microhttpd.h>
#include <stdint.h>

#include "backend/registry.h"
#include "conf/conf.h"
#include "core/err.h"
#include "http/auth.h"

#define GW_GUARD_TICK_MS 100

typedef struct gw_guard gw_guard_t;
typedef struct gw_guard_conn gw_guard_conn_t;

typedef struct gw_guard_req {
    gw_err_t early;           /* decided from the headers (GW_OK: none) */
    int answer_now;           /* answer in the first handler call; MHD closes after it */
    char msg[256];            /* the error message for `early` */
    int preflight;            /* a CORS preflight, answered by gw_guard_preflight */
    const char *origin;       /* Origin header (MHD's memory, valid for the request) */
    int origin_ok;            /* origin is allowed by cors.origins */
    gw_auth_key_t *key;       /* the authenticated key; NULL when auth is off or failed */
    int key_held;             /* one of key's concurrent slots is taken */
    int uri_too_long;
    gw_guard_conn_t *gc;      /* the connection's table entry (may be NULL) */
    int timed_out;            /* set by gw_guard_done: the reaper ended this request (408) */
    char client[64];          /* the peer's address, for the log */
} gw_guard_req_t;

/* Loads TLS files and builds the key set; starts the reaper. conf and reg borrowed. */
gw_err_t gw_guard_new(const gw_conf_t *conf, gw_registry_t *reg, gw_guard_t **out,
                      gw_errbuf_t *err);
/* Stops the reaper and frees. Call after MHD_stop_daemon. NULL is fine. */
void gw_guard_free(gw_guard_t *g);

/* Flags (MHD_USE_TLS) and an MHD_OPTION_ARRAY list for MHD_start_daemon; the array
 * lives as long as g. */
unsigned gw_guard_mhd_flags(const gw_guard_t *g);
struct MHD_OptionItem *gw_guard_mhd_options(gw_guard_t *g);
/* The per-connection memory (MHD_OPTION_CONNECTION_MEMORY_LIMIT): floor_bytes, or more
 * when limits.max_header_bytes and max_url_bytes need more room to be reached at all. */
size_t gw_guard_conn_memory(const gw_guard_t *g, size_t floor_bytes);
/* Logs the security posture once listening: keys by name, TLS, CORS, and a warning
 * when a non-loopback address is served without keys. */
void gw_guard_log_start(const gw_guard_t *g);
/* 1 when listen.host is not loopback and no key is configured (allowed by the config). */
int gw_guard_open_to_lan(const gw_guard_t *g);

/* The request line arrived (MHD's URI log callback). Starts the request deadline. */
void gw_guard_on_uri(gw_guard_t *g, struct MHD_Connection *c, gw_guard_req_t *q,
                     const char *uri);
/*
 * The headers arrived (first access-handler call). open_route: the route needs no key
 * (/health). Fills q: early/answer_now/msg, preflight, origin, key.
 */
void gw_guard_admit(gw_guard_t *g, struct MHD_Connection *c, gw_guard_req_t *q,
                    const char *method, int open_route);
/* The whole request has arrived: no more request deadline for this connection. */
void gw_guard_body_done(gw_guard_t *g, gw_guard_req_t *q);
/* The request is over (completion callback): releases the key's slot; the connection
 * is IDLE again. Safe to call for a request that never reached gw_guard_admit. */
void gw_guard_done(gw_guard_t *g, gw_guard_req_t *q);

/* Gives the request's concurrent slot back early (the answer is complete and queued);
 * gw_guard_done does it otherwise. Idempotent; the MHD worker of the request only. */
void gw_guard_release_key(gw_guard_req_t *q);
/* 1 if the request's key may use model m. */
int gw_guard_allows(const gw_guard_req_t *q, const gw_model_t *m);
const char *gw_guard_key_name(const gw_guard_req_t *q);

/* Headers every response to this request carries (CORS for an allowed origin). */
void gw_guard_add_headers(const gw_guard_t *g, const gw_guard_req_t *q,
                          struct MHD_Response *resp);
/* The 204 answer to a preflight (caller adds X-Request-Id, queues and destroys it). */
struct MHD_Response *gw_guard_preflight(const gw_guard_t *g, const gw_guard_req_t *q,
                                        struct MHD_Connection *c);

/*
 * 1 if the path (n bytes, from its first '/') has a "." or ".." segment, also when
 * written with %2e: such a path is refused rather than forwarded, because the HTTP
 * client would resolve it and reach a different path on the backend than the one shown.
 */
int gw_guard_dot_segment(const char *path, size_t n);

#endif
