/*
 * guard.c - admission checks, connection table and the request-deadline reaper
 * (guard.h has the design and the thread rules).
 */
#include "http/guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h> /* malloc_trim */
#endif

#include "core/alloc.h"
#include "core/log.h"
#include "http/cors.h"
#include "http/tls.h"

#define GW_GUARD_POOL_EXTRA (2u * 1024) /* MHD pool beyond URL + headers: buffers */
#define GW_GUARD_TRIM_DELAY_MS 1000 /* idle this long before the heap is trimmed */
#define GW_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define MAX_OPTS 12

typedef enum conn_state {
    C_IDLE = 0,  /* waiting for a request line (new, or between keep-alive requests) */
    C_RECEIVING, /* request line seen; headers and body must arrive before the deadline */
    C_BUSY,      /* request complete (or answered early): no receive deadline */
} conn_state_t;

struct gw_guard_conn {
    struct gw_guard_conn *prev, *next;
    int fd;
    conn_state_t state;
    uint64_t deadline_us; /* for C_IDLE and C_RECEIVING */
    int reaped;           /* the reaper shut the socket down */
};

struct gw_guard {
    const gw_conf_t *conf;
    gw_auth_t *auth;
    gw_cors_t *cors;
    gw_tls_t tls;
    int has_tls;
    struct MHD_OptionItem opts[MAX_OPTS];

    pthread_mutex_t mu;          /* guards everything below, and each entry's state fields */
    pthread_cond_t cv;
    struct gw_guard_conn *conns; /* every open connection */
    size_t n_conns;
    int trim_due;                /* connections came and went since the last trim */
    uint64_t trim_at;            /* when to trim if still nobody is connected; 0 = not armed */
    uint64_t wake_at;            /* when the reaper wakes next; UINT64_MAX = only if signalled */
    int stop;
    int thread_started;
    pthread_t reaper;
};

static uint64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t request_us(const gw_guard_t *g)
{
    return (uint64_t)g->conf->request_timeout_ms * 1000u;
}

/* ================================================================ reaper ===== */

/* Writes a complete 408 response; best effort (the socket is non-blocking). */
static void send_408(const gw_guard_t *g, int fd)
{
    char body[384], msg[1024], id[17];
    unsigned char raw[8];
    size_t i;
    int nb, n;

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        memset(raw, 0, sizeof(raw));
    for (i = 0; i < sizeof(raw); i++)
        snprintf(id + 2 * i, 3, "%02x", raw[i]);
    nb = snprintf(body, sizeof(body),
                  "{\"error\":{\"message\":\"the request was not received completely within "
                  "%u ms\",\"type\":\"invalid_request_error\",\"param\":null,"
                  "\"code\":\"request_timeout\"}}",
                  g->conf->request_timeout_ms);
    n = snprintf(msg, sizeof(msg),
                 "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                 "Content-Type: application/json\r\nX-Request-Id: %s\r\n"
                 "Content-Length: %d\r\n\r\n%s",
                 id, nb, body);
    if (n > 0 && (size_t)n < sizeof(msg))
        (void)!send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Ends every connection past its deadline; returns the earliest deadline left. */
static uint64_t reap(gw_guard_t *g, uint64_t now)
{
    struct gw_guard_conn *gc;
    uint64_t next = UINT64_MAX;

    for (gc = g->conns; gc; gc = gc->next) {
        if (gc->reaped || gc->state == C_BUSY)
            continue;
        if (now < gc->deadline_us) {
            if (gc->deadline_us < next)
                next = gc->deadline_us;
            continue;
        }
        gc->reaped = 1;
        if (gc->state == C_RECEIVING && !g->has_tls)
            send_408(g, gc->fd);
        GW_LOG(GW_LOG_DEBUG, "guard: closing %s connection fd=%d: request deadline of %u ms",
               gc->state == C_RECEIVING ? "receiving" : "idle", gc->fd,
               g->conf->request_timeout_ms);
        /* MHD reads end-of-stream and closes the connection on its own thread */
        shutdown(gc->fd, SHUT_RDWR);
    }
    return next;
}

/* The reaper sleeps until the earliest deadline; wake it if `at` comes sooner. */
static void wake_reaper(gw_guard_t *g, uint64_t at)
{
    if (at < g->wake_at)
        pthread_cond_signal(&g->cv);
}

/*
 * The reaper thread. It sleeps until the earliest deadline (rounded up to the next
 * GW_GUARD_TICK_MS, so that close deadlines share one wake-up), or without a timeout
 * when no connection has one: connections that wait on a backend cost no wake-ups.
 */
static void *reaper_main(void *arg)
{
    gw_guard_t *g = arg;
    const uint64_t tick = GW_GUARD_TICK_MS * 1000u;
    struct timespec ts;
    uint64_t now, next;

    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        now = mono_us();
        next = reap(g, now);
        if (g->trim_at != 0 && now >= g->trim_at) {
            g->trim_at = 0;
            if (g->n_conns == 0 && g->trim_due) {
                /*
                 * Nobody has been connected for a while: hand the heap that a burst of
                 * requests freed back to the system, so that memory comes back down
                 * (glibc keeps freed chunks in its per-thread arenas otherwise).
                 */
                g->trim_due = 0;
                pthread_mutex_unlock(&g->mu);
#ifdef __GLIBC__
                malloc_trim(0);
#endif
                pthread_mutex_lock(&g->mu);
                continue;
            }
        }
        if (g->trim_at != 0 && g->trim_at < next)
            next = g->trim_at;
        if (next == UINT64_MAX) {
            g->wake_at = UINT64_MAX;
            pthread_cond_wait(&g->cv, &g->mu);
            continue;
        }
        next = (next + tick - 1) / tick * tick;
        g->wake_at = next;
        ts.tv_sec = (time_t)(next / 1000000u);
        ts.tv_nsec = (long)(next % 1000000u) * 1000L;
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* MHD_OPTION_NOTIFY_CONNECTION: runs on the worker that owns the connection. */
static void on_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                    enum MHD_ConnectionNotificationCode code)
{
    gw_guard_t *g = cls;
    struct gw_guard_conn *gc;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

        *socket_context = NULL;
        if (ci == NULL)
            return;
        gc = gw_xcalloc(1, sizeof(*gc));
        gc->fd = ci->connect_fd;
        gc->state = C_IDLE;
        gc->deadline_us = mono_us() + request_us(g);
        pthread_mutex_lock(&g->mu);
        gc->next = g->conns;
        if (g->conns)
            g->conns->prev = gc;
        g->conns = gc;
        g->n_conns++;
        g->trim_due = 1;
        wake_reaper(g, gc->deadline_us);
        pthread_mutex_unlock(&g->mu);
        *socket_context = gc;
        return;
    }
    /* MHD_CONNECTION_NOTIFY_CLOSED: before MHD closes the fd */
    gc = *socket_context;
    if (gc == NULL)
        return;
    *socket_context = NULL;
    pthread_mutex_lock(&g->mu);
    if (gc->prev)
        gc->prev->next = gc->next;
    else
        g->conns = gc->next;
    if (gc->next)
        gc->next->prev = gc->prev;
    if (--g->n_conns == 0 && g->trim_due && g->trim_at == 0) {
        g->trim_at = mono_us() + GW_GUARD_TRIM_DELAY_MS * 1000u;
        wake_reaper(g, g->trim_at);
    }
    pthread_mutex_unlock(&g->mu);
    free(gc);
}

/* Moves the connection to state st; returns 1 if the reaper has already shut it down. */
static int set_state(gw_guard_t *g, struct gw_guard_conn *gc, conn_state_t st)
{
    int reaped;

    if (gc == NULL)
        return 0;
    pthread_mutex_lock(&g->mu);
    gc->state = st;
    gc->deadline_us = st == C_BUSY ? 0 : mono_us() + request_us(g);
    if (st != C_BUSY)
        wake_reaper(g, gc->deadline_us);
    reaped = gc->reaped;
    pthread_mutex_unlock(&g->mu);
    return reaped;
}

static int was_reaped(gw_guard_t *g, struct gw_guard_conn *gc)
{
    int reaped;

    if (gc == NULL)
        return 0;
    pthread_mutex_lock(&g->mu);
    reaped = gc->reaped;
    pthread_mutex_unlock(&g->mu);
    return reaped;
}

/* ================================================================ lifecycle == */

gw_err_t gw_guard_new(const gw_conf_t *conf, gw_registry_t *reg, gw_guard_t **out,
                      gw_errbuf_t *err)
{
    gw_guard_t *g = gw_xcalloc(1, sizeof(*g));
    size_t n = 0;
    gw_err_t rc;

    *out = NULL;
    g->conf = conf;
    if (conf->tls_cert != NULL) {
        rc = gw_tls_load(conf->tls_cert, conf->tls_key, &g->tls, err);
        if (rc != GW_OK) {
            free(g);
            return rc;
        }
        g->has_tls = 1;
    }
    g->wake_at = UINT64_MAX;
    g->auth = gw_auth_new(conf, reg);
    g->cors = gw_cors_new(conf);
    pthread_mutex_init(&g->mu, NULL);
    {
        pthread_condattr_t ca;

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&g->cv, &ca);
        pthread_condattr_destroy(&ca);
    }

    g->opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_conn, g};
    if (conf->max_connections_per_ip > 0)
        g->opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                               (intptr_t)conf->max_connections_per_ip, NULL};
    if (g->has_tls) {
        g->opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, g->tls.cert_pem};
        g->opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, g->tls.key_pem};
        g->opts[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)GW_TLS_PRIORITIES};
    }
    g->opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    if (pthread_create(&g->reaper, NULL, reaper_main, g) != 0) {
        gw_guard_free(g);
        return gw_errf(err, GW_EINTERNAL, NULL, "cannot start the connection reaper thread");
    }
    g->thread_started = 1;
    pthread_setname_np(g->reaper, "gw-reaper");
    *out = g;
    return GW_OK;
}

void gw_guard_free(gw_guard_t *g)
{
    struct gw_guard_conn *gc, *next;

    if (g == NULL)
        return;
    if (g->thread_started) {
        pthread_mutex_lock(&g->mu);
        g->stop = 1;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->reaper, NULL);
    }
    for (gc = g->conns; gc; gc = next) { /* none after MHD_stop_daemon; be safe */
        next = gc->next;
        free(gc);
    }
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    gw_auth_free(g->auth);
    gw_cors_free(g->cors);
    gw_tls_free(&g->tls);
    free(g);
}

unsigned gw_guard_mhd_flags(const gw_guard_t *g)
{
    return g->has_tls ? MHD_USE_TLS : 0;
}

size_t gw_guard_conn_memory(const gw_guard_t *g, size_t floor_bytes)
{
    size_t need = g->conf->max_header_bytes + g->conf->max_url_bytes + GW_GUARD_POOL_EXTRA;

    return need > floor_bytes ? need : floor_bytes;
}

struct MHD_OptionItem *gw_guard_mhd_options(gw_guard_t *g)
{
    return g->opts;
}

int gw_guard_open_to_lan(const gw_guard_t *g)
{
    return gw_auth_count(g->auth) == 0 && !gw_conf_host_is_loopback(g->conf->listen_host);
}

void gw_guard_log_start(const gw_guard_t *g)
{
    const gw_conf_t *conf = g->conf;
    char names[512];
    size_t i, o = 0;

    names[0] = '\0';
    for (i = 0; i < conf->n_keys && o < sizeof(names); i++)
        o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", i ? ", " : "",
                              conf->keys[i].name);
    if (conf->n_keys > 0)
        GW_LOG(GW_LOG_INFO, "auth: %zu API key%s (%s)", conf->n_keys,
               conf->n_keys == 1 ? "" : "s", names);
    else if (gw_guard_open_to_lan(g))
        GW_LOG(GW_LOG_WARN,
               "auth: NO API KEYS on non-loopback address %s: anyone who can reach it may use "
               "every model (auth.allow_unauthenticated is true)",
               conf->listen_host);
    else
        GW_LOG(GW_LOG_INFO, "auth: off (no API keys; loopback address %s only)",
               conf->listen_host);
    GW_LOG(GW_LOG_INFO, "tls: %s%s", g->has_tls ? "HTTPS with " : "off (plain HTTP)",
           g->has_tls ? conf->tls_cert : "");
    o = 0;
    names[0] = '\0';
    for (i = 0; i < conf->n_cors_origins && o < sizeof(names); i++)
        o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", i ? " " : "",
                              conf->cors_origins[i]);
    GW_LOG(GW_LOG_INFO, "cors: %s", conf->n_cors_origins ? names : "no origin allowed");
    GW_LOG(GW_LOG_INFO,
           "limits: body %zu B, headers %u / %zu B, url %zu B, json depth %u, request %u ms, "
           "%u connections (%u per address)",
           conf->max_body_bytes, conf->max_headers, conf->max_header_bytes, conf->max_url_bytes,
           conf->max_json_depth, conf->request_timeout_ms, conf->max_connections,
           conf->max_connections_per_ip);
}

/* ================================================================ requests === */

static void client_address(struct MHD_Connection *c, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    snprintf(out, cap, "-");
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

void gw_guard_on_uri(gw_guard_t *g, struct MHD_Connection *c, gw_guard_req_t *q,
                     const char *uri)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    q->uri_too_long = strlen(uri) > g->conf->max_url_bytes;
    q->gc = ci ? ci->socket_context : NULL;
    client_address(c, q->client, sizeof(q->client));
    set_state(g, q->gc, C_RECEIVING);
}

typedef struct hdr_acc {
    size_t count, bytes;
} hdr_acc_t;

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    hdr_acc_t *a = cls;

    (void)kind;
    a->count++;
    a->bytes += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    return MHD_YES;
}

static void fail(gw_guard_req_t *q, gw_err_t e, int now, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(gw_guard_req_t *q, gw_err_t e, int now, const char *fmt, ...)
{
    va_list ap;

    q->early = e;
    q->answer_now = now;
    va_start(ap, fmt);
    vsnprintf(q->msg, sizeof(q->msg), fmt, ap);
    va_end(ap);
}

static void authenticate(gw_guard_t *g, struct MHD_Connection *c, gw_guard_req_t *q)
{
    const char *key = NULL, *cl;
    size_t len = 0;
    gw_auth_cred_t cred;
    gw_auth_key_t *k;

    cred = gw_auth_extract(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
                           MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Api-Key"), &key,
                           &len);
    k = cred == GW_AUTH_FOUND ? gw_auth_find(g->auth, key, len) : NULL;
    if (k == NULL) {
        /* do not read a body we would refuse anyway for its size */
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        fail(q, GW_EAUTH, cl && strtoull(cl, NULL, 10) > g->conf->max_body_bytes,
             "%s",
             cred == GW_AUTH_NONE
                 ? "Missing API key: send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY'"
             : cred == GW_AUTH_MALFORMED
                 ? "Malformed API key header: expected 'Authorization: Bearer KEY' or "
                   "'x-api-key: KEY'"
                 : "Invalid API key");
        return;
    }
    q->key = k;
    if (!gw_auth_acquire(k)) {
        fail(q, GW_ERATELIMIT, 0,
             "API key '%s' already has %u requests in progress, its max_concurrent limit: "
             "retry when one has finished",
             gw_auth_key_name(k), gw_auth_max_concurrent(k));
        return;
    }
    q->key_held = 1;
}

void gw_guard_admit(gw_guard_t *g, struct MHD_Connection *c, gw_guard_req_t *q,
                    const char *method, int open_route)
{
    const gw_conf_t *conf = g->conf;
    hdr_acc_t acc = {0, 0};

    q->origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    q->origin_ok = gw_cors_allowed(g->cors, q->origin);
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_header, &acc);

    if (q->uri_too_long) {
        fail(q, GW_EURITOOLONG, 1, "the request URL exceeds the limit of %zu bytes",
             conf->max_url_bytes);
    } else if (acc.count > conf->max_headers) {
        fail(q, GW_EHDRTOOBIG, 1, "the request has %zu header fields; the limit is %u",
             acc.count, conf->max_headers);
    } else if (acc.bytes > conf->max_header_bytes) {
        fail(q, GW_EHDRTOOBIG, 1, "the request header fields take %zu bytes; the limit is %zu",
             acc.bytes, conf->max_header_bytes);
    } else if (was_reaped(g, q->gc)) {
        fail(q, GW_ETIMEOUTREQ, 1, "the request was not received completely within %u ms",
             conf->request_timeout_ms);
    } else if (strcmp(method, "OPTIONS") == 0 && q->origin != NULL &&
               MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                           "Access-Control-Request-Method") != NULL) {
        q->preflight = 1; /* answered without a key, never forwarded */
    } else if (!open_route && gw_auth_count(g->auth) > 0) {
        authenticate(g, c, q);
    }
    if (q->answer_now)
        set_state(g, q->gc, C_BUSY);
}

void gw_guard_body_done(gw_guard_t *g, gw_guard_req_t *q)
{
    set_state(g, q->gc, C_BUSY);
}

void gw_guard_release_key(gw_guard_req_t *q)
{
    if (q->key_held) {
        gw_auth_release(q->key);
        q->key_held = 0;
    }
}

void gw_guard_done(gw_guard_t *g, gw_guard_req_t *q)
{
    gw_guard_release_key(q);
    if (set_state(g, q->gc, C_IDLE))
        q->timed_out = 1;
}

int gw_guard_allows(const gw_guard_req_t *q, const gw_model_t *m)
{
    return gw_auth_allows(q->key, m);
}

const char *gw_guard_key_name(const gw_guard_req_t *q)
{
    return gw_auth_key_name(q->key);
}

void gw_guard_add_headers(const gw_guard_t *g, const gw_guard_req_t *q,
                          struct MHD_Response *resp)
{
    if (!q->preflight)
        gw_cors_add_actual(g->cors, resp, q->origin, q->origin_ok);
}

struct MHD_Response *gw_guard_preflight(const gw_guard_t *g, const gw_guard_req_t *q,
                                        struct MHD_Connection *c)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"",
                                                                MHD_RESPMEM_PERSISTENT);

    gw_cors_add_preflight(g->cors, resp, q->origin, q->origin_ok,
                          MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                      "Access-Control-Request-Headers"));
    return resp;
}

int gw_guard_dot_segment(const char *path, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t dots = 0, other = 0;

        if (path[i] == '/') {
            i++;
            continue;
        }
        while (i < n && path[i] != '/' && path[i] != '?') {
            if (path[i] == '.') {
                dots++;
                i++;
            } else if (path[i] == '%' && i + 2 < n && path[i + 1] == '2' &&
                       (path[i + 2] == 'e' || path[i + 2] == 'E')) {
                dots++;
                i += 3;
            } else {
                other++;
                i++;
            }
        }
        if (other == 0 && (dots == 1 || dots == 2))
            return 1;
        if (i < n && path[i] == '?')
            break;
    }
    return 0;
}
