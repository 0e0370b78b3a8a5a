/*
 * internal.h - what the files of the HTTP layer share: the server object, the route
 * types, the request context and the relay object (gw_proxy_t), and the few functions
 * one file calls in another (gw__ names). Not for use outside gateway/http/.
 *
 * Threads: see server.c's header comment; gw_proxy_t says which fields each thread may
 * touch.
 */
#ifndef GW_HTTP_INTERNAL_H
#define GW_HTTP_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "backend/registry.h"
#include "backend/supervisor.h"
#include "conf/conf.h"
#include "core/buf.h"
#include "core/sse.h"
#include "http/guard.h"
#include "http/server.h"
#include "openai/tokids.h"
#include "upstream/client.h"
#include "upstream/fetch.h"
#include "upstream/tokcache.h"

#define GW_CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

#define GW_MAX_SSE_EVENT (8u * 1024 * 1024)
#define GW_MAX_HEADERS_BYTES (64u * 1024)
/* The block MHD allocates per callback response. With chunked encoding the reader fills
 * the connection's own write buffer, so this is only used for HTTP/1.0 clients; a large
 * one cost 16 KiB per stream for nothing. */
#define GW_STREAM_BLOCK (2u * 1024)
/* Per-connection MHD pool: request line, headers, the body being read and one chunk of
 * the response being written. 8 KiB holds an SDK's or curl's header block many times
 * over (a larger one gets 431, like nginx's default 8k header buffers) and keeps 1,000
 * streams at 8 MiB; it is most of the per-stream memory. */
#define GW_CONN_MEMORY (8u * 1024)
/* Upstream threads, each with its own curl multi; relays are spread round robin. The
 * token-ID path runs on the first, which owns the tokenizer cache. */
#define GW_MAX_UPSTREAM_THREADS 16
/* curl's receive buffer per transfer: SSE events are small; bodies just take more reads. */
#define GW_CURL_BUFFER (8L * 1024)

struct gw_server {
    const gw_conf_t *conf;
    gw_registry_t *reg;
    struct MHD_Daemon *mhd;
    gw_upstream_t *up;             /* ups[0]: also runs the tokenizer cache */
    gw_upstream_t *ups[GW_MAX_UPSTREAM_THREADS];
    unsigned n_up;
    atomic_uint next_up;           /* round robin over ups for plain relays */
    gw_tokcache_t *tokcache;       /* ups[0]'s thread only */
    gw_upstream_cmd_t free_cmd;
    gw_guard_t *guard;             /* keys, CORS, TLS, limits, request deadlines */
    uint16_t port;
    time_t started;
    atomic_int stopping;
    atomic_ulong last_trim_ms;
    pthread_mutex_t mu;            /* guards the proxy and admin lists */
    struct gw_proxy *proxies;      /* every live proxy, for shutdown */
    struct gw_admin *admins;       /* admin load/unload requests waiting, for shutdown */
};

typedef enum route_kind {
    R_NONE = 0,
    R_HEALTH,
    R_MODELS,
    R_MODEL_ONE, /* GET /v1/models/{id} */
    R_OAI,       /* model-routed OpenAI JSON endpoint */
    R_UPSTREAM,  /* /upstream/{model}/{path}: raw pass-through */
    R_ADMIN,     /* POST /admin/models/{id}/load|unload */
} route_kind_t;

typedef struct route {
    const char *path;
    const char *methods; /* space-separated; NULL = any */
    route_kind_t kind;
    int oai_kind;        /* gw_oai_kind_t for R_OAI */
    int prefix;          /* match path as a prefix */
} route_t;

typedef enum proxy_mode { M_NONE = 0, M_SSE, M_RAW, M_BUFFER } proxy_mode_t;

typedef struct gw_proxy {
    gw_xfer_t x;                /* the upstream transfer; container_of gives the proxy */
    gw_server_t *srv;
    gw_upstream_t *up;          /* the upstream thread that owns x */
    pthread_mutex_t mu;
    atomic_int refs;
    struct gw_proxy *prev, *next; /* srv->proxies */

    /* shared, under mu */
    struct MHD_Connection *conn; /* NULL once MHD is done with the request */
    int suspended;
    int client_gone;
    int shutdown;
    int decided;                 /* the upstream outcome is known: status/mode/fail */
    int up_done;
    int paused, unpause_posted;
    gw_buf_t out;                /* stream modes: bytes for the client; buffer: the body */

    /* written by the upstream thread before `decided`, read by MHD after */
    proxy_mode_t mode;
    int status;
    gw_buf_t hdrs;               /* forwarded response headers: "name\0value\0"... */
    int hdr_is_sse;
    gw_err_t fail;               /* gateway-made error instead of a backend answer */
    char fail_msg[320];
    char fail_param[128];

    /* upstream thread only */
    CURLcode up_rc;
    int headers_done;
    gw_sse_t sse;
    gw_buf_t stage;
    int saw_done, saw_error_event;
    int ever_paused;
    int connected;               /* curl's prereq callback ran */

    /* token-ID path (upstream thread only, after creation) */
    json_t *tok_root;            /* the client's parsed body */
    gw_tok_req_t tok_req;
    int tok_mode;
    gw_tok_resp_t *tok;          /* response processor, once the prelude is done */
    gw_vocab_t *tok_vocab;
    gw_fetch_t *tok_fetch;       /* prelude request in flight */
    gw_tokcache_waiter_t tok_waiter;
    gw_upstream_cmd_t tok_cmd;
    int64_t *tok_prompt;
    size_t tok_n_prompt;
    int tok_have_prompt;
    int tok_stopped;             /* the processor ended the stream at a stop token */
    size_t tok_cls_i;            /* next stop ID to classify */
    char *tok_body;              /* the rewritten upstream body */
    uint64_t idle_ms;

    /* immutable after creation */
    route_kind_t route;
    int rewrite_model;
    char *model_name;            /* the name the client asked for */
    size_t model_len;
    gw_model_t *model;
    struct curl_slist *req_headers;
    char *body;
    size_t body_len;
    char errbuf[CURL_ERROR_SIZE];

    /* A spawned model's backend may have to be started first (backend/supervisor.h).
     * leased and committed are written under mu before the transfer starts; url_tail is
     * immutable. */
    gw_sup_wait_t wait;          /* queued while the model starts */
    int leased;                  /* holds a lease: released with the transfer */
    int committed;               /* a waiting stream got 200 + SSE before the backend answered */
    char *url_tail;              /* path and query after the backend's base URL */
} gw_proxy_t;

typedef enum req_phase { PH_NEW = 0, PH_BODY, PH_WAIT, PH_DONE } req_phase_t;

typedef struct gw_req {
    gw_server_t *srv;
    char *uri;                   /* raw request target, as received */
    size_t path_len;             /* bytes of uri before '?' */
    const route_t *route;
    const route_t *wrong_method;
    req_phase_t phase;
    gw_buf_t body;
    int too_big;
    int discard;                 /* body not needed (error already decided) */
    gw_proxy_t *px;
    struct gw_admin *admin;      /* a waiting /admin/models/... request */
    int stream;                  /* the body asked for "stream": true */
    uint64_t t_start_us;
    int status;                  /* for the access log */
    char method[16];
    char model[96];
    char id[40];
    gw_guard_req_t sec;          /* admission: key, CORS, early errors (guard.h) */
} gw_req_t;

/* server.c: response helpers (MHD worker threads). */
int gw__ieq(const char *a, const char *b);
int gw__drop_request_header(const char *name);
int gw__drop_response_header(const char *name);
/* An OpenAI error body (malloc'd JSON text; the caller frees or hands it to MHD). */
char *gw__error_body(const char *message, const char *type, const char *param, const char *code);
void gw__add_common_headers(gw_req_t *r, struct MHD_Response *resp, int complete);
enum MHD_Result gw__queue_error(gw_req_t *r, struct MHD_Connection *c, gw_err_t e,
                                const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* relay.c: builds the relay for a request and starts it (suspends c). tok_root and
 * tok_req (stolen) are set for the token-ID path. */
enum MHD_Result gw__proxy_start(gw_req_t *r, struct MHD_Connection *c, gw_model_t *m,
                                const char *path, size_t path_len, int rewrite_model,
                                const char *method, json_t *tok_root, gw_tok_req_t *tok_req);
/* relay.c: the handler's call after the upstream side resumed the connection. */
enum MHD_Result gw__proxy_respond(gw_req_t *r, struct MHD_Connection *c);
/* relay.c: drops one reference (request, response or upstream side). */
void gw__proxy_unref(gw_proxy_t *px);
/* relay.c: resumes the connection if the MHD side suspended it. Caller holds px->mu. */
void gw__proxy_wake(gw_proxy_t *px);

/* relay.c: ends a request that never reached the backend with a gateway error
 * (upstream thread). */
void gw__proxy_fail_early(gw_proxy_t *px, gw_err_t e, const char *param, const char *msg);

/* tokpath.c: the token-ID prelude, run on the proxy's upstream thread before its transfer
 * starts (vocabulary, stop-token classification, rewritten body, prompt token IDs). */
void gw__tok_prelude(void *arg);
/* tokpath.c: the tokenizer cache's answer for a proxy's waiter (px->tok_waiter.cb). */
void gw__tok_on_vocab(gw_tokcache_waiter_t *w, gw_vocab_t *v, const char *err, long status);

#endif
