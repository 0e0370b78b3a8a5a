/*
 * server.c - front HTTP server: MHD daemon, routing, request contexts and the relay.
 *
 * Threads. MHD worker threads run the access handler, the content reader and the
 * completion callback of the connections they own. The upstream thread (client.c)
 * runs every curl callback and the gw_xfer_ops_t callbacks. A relay object (gw_proxy_t)
 * is the only thing both touch; its mutable shared fields are guarded by px->mu. The
 * only MHD call made from the upstream thread is MHD_resume_connection(), and only for
 * a connection that the proxy has seen suspended and that is still alive (conn != NULL).
 *
 * Request lifecycle (design: ../shared/reference/mhd-curl-design.md section 7.4):
 *   uri log callback  -> allocate gw_req_t (raw URI kept for routing and forwarding)
 *   handler call 1    -> route; early 413 from Content-Length; return MHD_YES
 *   handler calls 2..n-> accumulate the body (bounded)
 *   final call        -> local routes answer at once; proxied routes build a gw_proxy_t,
 *                        suspend with no response queued and post START upstream
 *   upstream headers  -> the decision (status, stream or buffer) is recorded and the
 *                        connection resumed; the handler runs again and queues the
 *                        response on its own thread (keep-alive survives)
 *   completion        -> unwatch the client fd, post CANCEL, drop the request's ref
 *
 * A proxy is reference counted: the request context, the MHD response (stream modes)
 * and the upstream side (until on_release) each hold one.
 *
 * Shared types live in http/internal.h; the token-ID prelude is in http/tokpath.c.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/jspan.h"
#include "core/log.h"
#include "core/sse.h"
#include "backend/supervisor.h"
#include "core/text.h"
#include "http/guard.h"
#include "openai/request.h"
#include "openai/rewrite.h"
#include "openai/tokids.h"
#include "upstream/client.h"
#include "upstream/fetch.h"
#include "upstream/tokcache.h"

#include "http/internal.h"

/* ================================================================ routes ===== */

static const route_t routes[] = {
    {"/health", "GET HEAD", R_HEALTH, 0, 0},
    {"/v1/health", "GET HEAD", R_HEALTH, 0, 0},
    {"/v1/models", "GET HEAD", R_MODELS, 0, 0},
    {"/v1/chat/completions", "POST", R_OAI, GW_OAI_CHAT, 0},
    {"/v1/completions", "POST", R_OAI, GW_OAI_COMPLETIONS, 0},
    {"/v1/embeddings", "POST", R_OAI, GW_OAI_EMBEDDINGS, 0},
    {"/v1/rerank", "POST", R_OAI, GW_OAI_OTHER, 0},
    {"/v1/reranking", "POST", R_OAI, GW_OAI_OTHER, 0},
    {"/v1/responses", "POST", R_OAI, GW_OAI_OTHER, 0},
    {"/v1/messages", "POST", R_OAI, GW_OAI_OTHER, 0},
    {"/v1/messages/count_tokens", "POST", R_OAI, GW_OAI_OTHER, 0},
    {"/v1/models/", "GET HEAD", R_MODEL_ONE, 0, 1},
    {"/upstream/", NULL, R_UPSTREAM, 0, 1},
    {"/admin/models/", "POST", R_ADMIN, 0, 1},
    {NULL, NULL, R_NONE, 0, 0},
};

static int method_allowed(const char *methods, const char *method)
{
    size_t n = strlen(method);
    const char *p = methods;

    if (methods == NULL)
        return 1;
    while ((p = strstr(p, method)) != NULL) {
        if ((p == methods || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return 1;
        p += n;
    }
    return 0;
}

/* Finds the route for path (len bytes). *wrong_method is set when only the method differs. */
static const route_t *route_find(const char *path, size_t len, const char *method,
                                 const route_t **wrong_method)
{
    const route_t *r;

    *wrong_method = NULL;
    for (r = routes; r->path; r++) {
        size_t pl = strlen(r->path);
        int match = r->prefix ? (len > pl && memcmp(path, r->path, pl) == 0)
                              : (len == pl && memcmp(path, r->path, pl) == 0);

        if (!match)
            continue;
        if (method_allowed(r->methods, method))
            return r;
        if (*wrong_method == NULL)
            *wrong_method = r;
    }
    return NULL;
}

/* ================================================================ contexts === */

/* ================================================================ helpers ==== */

static __thread uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;

    if (x == 0) {
        if (RAND_bytes((unsigned char *)&x, sizeof(x)) != 1 || x == 0)
            x = gw_now_us() ^ (uint64_t)(uintptr_t)&x;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

static void make_request_id(struct MHD_Connection *c, char *out, size_t cap)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    size_t i, n;

    if (v != NULL) {
        n = strlen(v);
        if (n > 0 && n < cap && n <= 64) {
            for (i = 0; i < n; i++) {
                char ch = v[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' ||
                      ch == ':'))
                    break;
            }
            if (i == n) {
                memcpy(out, v, n + 1);
                return;
            }
        }
    }
    snprintf(out, cap, "%016llx", (unsigned long long)rng_next());
}

static int ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

/* Hop-by-hop and gateway-owned request headers that never reach the backend. */
static int drop_request_header(const char *name)
{
    static const char *const names[] = {
        "Host", "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Expect",
        "Authorization", "X-Api-Key", "Accept-Encoding", NULL};
    int i;

    for (i = 0; names[i]; i++)
        if (ieq(name, names[i]))
            return 1;
    return 0;
}

/* Hop-by-hop and gateway-owned response headers that never reach the client. */
static int drop_response_header(const char *name)
{
    static const char *const names[] = {
        "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Content-Length", "Date", NULL};
    int i;

    for (i = 0; names[i]; i++)
        if (ieq(name, names[i]))
            return 1;
    return strncasecmp(name, "Access-Control-", 15) == 0;
}

/* Builds an OpenAI error body. */
static char *error_body(const char *message, const char *type, const char *param,
                        const char *code)
{
    char msg[1024];
    json_t *o;
    char *s;

    /* messages quote client bytes: jansson refuses invalid UTF-8 (json_pack -> NULL) */
    snprintf(msg, sizeof(msg), "%s", message);
    gw_text_utf8_fix(msg);
    o = json_pack("{s:{s:s, s:s, s:o, s:s}}", "error", "message", msg, "type", type, "param",
                  (param && *param) ? json_string(param) : json_null(), "code", code);
    s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s ? s : gw_xstrdup("{\"error\":{\"message\":\"error\",\"type\":\"server_error\","
                              "\"param\":null,\"code\":\"internal_error\"}}");
}

/*
 * Headers on every response of a request: its id and, for an allowed origin, CORS.
 * complete: the whole answer is in resp, so the request no longer counts against its
 * key's max_concurrent (a client that sends the next request as soon as it has read
 * this one must not race the completion callback); a stream counts until it ends.
 */
static void add_common_headers(gw_req_t *r, struct MHD_Response *resp, int complete)
{
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    gw_guard_add_headers(r->srv->guard, &r->sec, resp);
    if (complete)
        gw_guard_release_key(&r->sec);
}

static enum MHD_Result queue_body(gw_req_t *r, struct MHD_Connection *c, int status,
                                  char *body, const char *ctype)
{
    struct MHD_Response *resp;
    enum MHD_Result rc;

    resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", ctype);
    add_common_headers(r, resp, 1);
    r->status = status;
    rc = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result queue_error(gw_req_t *r, struct MHD_Connection *c, gw_err_t e,
                                   const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static enum MHD_Result queue_error(gw_req_t *r, struct MHD_Connection *c, gw_err_t e,
                                   const char *param, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    struct MHD_Response *resp;
    enum MHD_Result rc;
    char *body;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    body = error_body(msg, gw_err_type(e), param, gw_err_code(e));
    resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    add_common_headers(r, resp, 1);
    if (e == GW_EAUTH)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"llama-gateway\"");
    if (e == GW_ERATELIMIT)
        MHD_add_response_header(resp, "Retry-After", "1");
    if (e == GW_EMETHOD && r->wrong_method && r->wrong_method->methods) {
        char allow[64];
        size_t i;

        snprintf(allow, sizeof(allow), "%s", r->wrong_method->methods);
        for (i = 0; allow[i]; i++)
            if (allow[i] == ' ')
                allow[i] = ',';
        MHD_add_response_header(resp, "Allow", allow);
    }
    if (gw_err_status(e) == 503)
        MHD_add_response_header(resp, "Retry-After", "1");
    r->status = gw_err_status(e);
    rc = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* ================================================================ proxy ====== */

static void proxy_unref(gw_proxy_t *px)
{
    gw_server_t *srv = px->srv;
    int idle;

    if (atomic_fetch_sub(&px->refs, 1) != 1)
        return;
    pthread_mutex_lock(&srv->mu);
    if (px->prev)
        px->prev->next = px->next;
    else
        srv->proxies = px->next;
    if (px->next)
        px->next->prev = px->prev;
    idle = srv->proxies == NULL;
    pthread_mutex_unlock(&srv->mu);

    if (px->req_headers)
        curl_slist_free_all(px->req_headers);
    gw_buf_free(&px->out);
    gw_buf_free(&px->hdrs);
    gw_buf_free(&px->stage);
    gw_sse_free(&px->sse);
    free(px->model_name);
    free(px->body);
    free(px->tok_body);
    free(px->tok_prompt);
    json_decref(px->tok_root);
    gw_tok_req_free(&px->tok_req);
    gw_tok_resp_free(px->tok);
    gw_vocab_unref(px->tok_vocab);
    free(px->url_tail);
    pthread_mutex_destroy(&px->mu);
    free(px);
    if (idle) {
        /* the last relay ended: give the heap that a burst of streams grew back to the
         * system (glibc keeps it otherwise); at most once a second */
        uint64_t now = gw_now_ms(), last = atomic_load(&srv->last_trim_ms);

        if (now - last >= 1000 && atomic_compare_exchange_strong(&srv->last_trim_ms, &last, now))
            malloc_trim(0);
    }
}

/* Resumes the connection if the MHD side suspended it. Caller holds px->mu. */
static void wake(gw_proxy_t *px)
{
    if (px->suspended && px->conn) {
        px->suspended = 0;
        MHD_resume_connection(px->conn);
    }
}

static void set_fail(gw_proxy_t *px, gw_err_t e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_fail(gw_proxy_t *px, gw_err_t e, const char *fmt, ...)
{
    va_list ap;

    if (px->fail != GW_OK)
        return;
    px->fail = e;
    va_start(ap, fmt);
    vsnprintf(px->fail_msg, sizeof(px->fail_msg), fmt, ap);
    va_end(ap);
}

/* --- upstream thread ------------------------------------------------------- */

/* Ends a request that never reached the backend with a gateway error. */
void gw__proxy_fail_early(gw_proxy_t *px, gw_err_t e, const char *param, const char *msg)
{
    set_fail(px, e, "%s", msg);
    snprintf(px->fail_param, sizeof(px->fail_param), "%s", param ? param : "");
    pthread_mutex_lock(&px->mu);
    px->up_done = 1;
    px->decided = 1;
    wake(px);
    pthread_mutex_unlock(&px->mu);
}

static void decide(gw_proxy_t *px)
{
    int ok = px->status >= 200 && px->status < 300;
    gw_model_state_t st = px->status == 503 ? GW_MODEL_LOADING : GW_MODEL_READY;

    atomic_store(&px->model->state, st);
    if (st == GW_MODEL_LOADING)
        gw_tokcache_invalidate(px->srv->tokcache, px->model); /* (re)starting backend */
    if (px->committed) {
        /* 200 + SSE went out while the model started: relay a stream, or keep the answer
         * aside (in stage) and turn it into an error event when it is complete */
        pthread_mutex_lock(&px->mu);
        px->mode = ok && px->hdr_is_sse ? M_SSE : M_BUFFER;
        pthread_mutex_unlock(&px->mu);
        if (px->mode == M_SSE)
            gw_upstream_set_deadline(px->up, &px->x, gw_now_ms() + px->idle_ms);
        return;
    }
    if (px->route == R_UPSTREAM)
        px->mode = M_RAW;
    else if (ok && px->hdr_is_sse)
        px->mode = M_SSE;
    else
        px->mode = M_BUFFER;
    if (px->mode == M_BUFFER)
        return; /* answered when the body is complete */
    gw_upstream_set_deadline(px->up, &px->x, gw_now_ms() + px->idle_ms);
    pthread_mutex_lock(&px->mu);
    px->decided = 1;
    wake(px);
    pthread_mutex_unlock(&px->mu);
}

/* curl: the connection to the backend is up (new or reused) and the request goes out
 * now. The deadline becomes the first-byte deadline (re-armed only if it is earlier). */
static int on_up_connected(void *ud, char *ip, char *local_ip, int port, int local_port)
{
    gw_proxy_t *px = ud;

    (void)ip;
    (void)local_ip;
    (void)port;
    (void)local_port;
    px->connected = 1;
    gw_upstream_set_deadline(px->up, &px->x,
                             gw_now_ms() + px->srv->conf->first_byte_timeout_ms);
    return CURL_PREREQFUNC_OK;
}

static size_t on_up_header(char *p, size_t size, size_t nitems, void *ud)
{
    gw_proxy_t *px = ud;
    size_t n = size * nitems, nl, vl;
    const char *colon, *v;

    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        gw_buf_reset(&px->hdrs); /* a new response (after 1xx) */
        px->hdr_is_sse = 0;
        px->headers_done = 0;
        return n;
    }
    if (n <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        long status = 0;

        curl_easy_getinfo(px->x.easy, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200)
            return n;
        px->status = (int)status;
        px->headers_done = 1;
        decide(px);
        return n;
    }
    colon = memchr(p, ':', n);
    if (colon == NULL)
        return n;
    nl = (size_t)(colon - p);
    v = colon + 1;
    while (v < p + n && (*v == ' ' || *v == '\t'))
        v++;
    vl = (size_t)(p + n - v);
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    {
        char name[128];

        if (nl == 0 || nl >= sizeof(name))
            return n;
        memcpy(name, p, nl);
        name[nl] = '\0';
        if (ieq(name, "Content-Type") && vl >= 17 && strncasecmp(v, "text/event-stream", 17) == 0)
            px->hdr_is_sse = 1;
        if (drop_response_header(name))
            return n;
        if (gw_buf_add(&px->hdrs, name, nl + 1) != GW_OK || gw_buf_add(&px->hdrs, v, vl) != GW_OK ||
            gw_buf_add(&px->hdrs, "", 1) != GW_OK)
            return 0; /* absurd header block: abort */
    }
    return n;
}

static int on_sse_event(void *ud, const gw_sse_event_t *ev)
{
    gw_proxy_t *px = ud;
    gw_buf_t *st = &px->stage;

    if (ev->kind == GW_SSE_COMMENT)
        return gw_sse_encode_comment(st, ev->data, ev->data_len) != GW_OK;
    if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0)
        px->saw_done = 1;
    if (px->tok && ev->event_len == 0) {
        if (gw_tok_resp_event(px->tok, ev->data, ev->data_len, st) == GW_TOK_STOP) {
            px->tok_stopped = 1;
            return 2; /* stop feeding: the stream is complete */
        }
        return 0;
    }
    if (ev->data_len > 0 && ev->data[0] == '{' && ev->event_len == 0 &&
        memchr(ev->data, '\n', ev->data_len) == NULL) {
        gw_jspan_t sp;

        if (gw_json_member(ev->data, ev->data_len, 0, "error", &sp) == 1)
            px->saw_error_event = 1;
        if (gw_buf_add(st, "data: ", 6) != GW_OK)
            return 1;
        if (px->rewrite_model) {
            if (gw_oai_set_model(ev->data, ev->data_len, px->model_name, px->model_len, st) < 0)
                return 1;
        } else if (gw_buf_add(st, ev->data, ev->data_len) != GW_OK) {
            return 1;
        }
        return gw_buf_add(st, "\n\n", 2) != GW_OK;
    }
    return gw_sse_encode(st, ev->event, ev->event_len, ev->data, ev->data_len) != GW_OK;
}

static size_t on_up_data(char *p, size_t size, size_t nmemb, void *ud)
{
    gw_proxy_t *px = ud;
    size_t n = size * nmemb;
    int stopped = 0;

    pthread_mutex_lock(&px->mu);
    if (px->client_gone || px->shutdown) {
        pthread_mutex_unlock(&px->mu);
        return 0;
    }
    px->paused = 0;
    px->unpause_posted = 0;
    if (px->mode != M_BUFFER && px->out.len >= px->srv->conf->max_stream_buffer) {
        px->paused = 1; /* the client is slow: hold the backend (TCP backpressure) */
        pthread_mutex_unlock(&px->mu);
        if (!px->ever_paused) {
            px->ever_paused = 1;
            GW_LOG(GW_LOG_DEBUG, "slow client: pausing the backend transfer with %zu bytes "
                   "buffered (model=%s)", px->out.len, px->model_name);
        }
        return CURL_WRITEFUNC_PAUSE;
    }
    pthread_mutex_unlock(&px->mu);
    px->x.deadline_ms = gw_now_ms() + px->idle_ms;

    switch (px->mode) {
    case M_BUFFER:
        if (gw_buf_add(px->committed ? &px->stage : &px->out, p, n) != GW_OK) {
            set_fail(px, GW_EUPSTREAM, "backend response exceeds the %zu-byte limit",
                     px->srv->conf->max_response_bytes);
            return 0;
        }
        return n;
    case M_RAW:
        pthread_mutex_lock(&px->mu);
        if (gw_buf_add(&px->out, p, n) != GW_OK) {
            pthread_mutex_unlock(&px->mu);
            return 0;
        }
        wake(px);
        pthread_mutex_unlock(&px->mu);
        return n;
    case M_SSE:
        if (gw_sse_feed(&px->sse, p, n, on_sse_event, px, &stopped) != GW_OK ||
            (stopped && !px->tok_stopped)) {
            set_fail(px, GW_EUPSTREAM, "backend sent an SSE event larger than %u bytes",
                     GW_MAX_SSE_EVENT);
            return 0;
        }
        if (px->tok_stopped) {
            /* the gateway ended the stream at a stop token: flush, then cancel the backend */
            pthread_mutex_lock(&px->mu);
            gw_buf_add(&px->out, px->stage.ptr, px->stage.len);
            wake(px);
            pthread_mutex_unlock(&px->mu);
            gw_buf_reset(&px->stage);
            return 0;
        }
        if (px->stage.len == 0)
            return n;
        pthread_mutex_lock(&px->mu);
        if (gw_buf_add(&px->out, px->stage.ptr, px->stage.len) != GW_OK) {
            pthread_mutex_unlock(&px->mu);
            return 0;
        }
        wake(px);
        pthread_mutex_unlock(&px->mu);
        gw_buf_reset(&px->stage);
        return n;
    default:
        return 0;
    }
}

static int body_is_error_json(const char *p, size_t n)
{
    gw_jspan_t sp;

    return gw_json_member(p, n, 0, "error", &sp) == 1 && p[sp.val_off] == '{';
}

/* Buffer mode: the body is complete; rewrite it in place for the client. */
static void finish_buffered(gw_proxy_t *px)
{
    int ok = px->status >= 200 && px->status < 300;

    if (ok && px->tok && px->out.len > 0) {
        gw_buf_t nb;

        gw_buf_init(&nb, px->out.max * 2);
        gw_tok_resp_body(px->tok, px->out.ptr, px->out.len, &nb);
        gw_buf_free(&px->out);
        px->out = nb;
    } else if (ok && px->rewrite_model && px->out.len > 0 && px->out.ptr[0] == '{') {
        gw_buf_t nb;

        gw_buf_init(&nb, px->out.max + px->model_len + 64);
        if (gw_oai_set_model(px->out.ptr, px->out.len, px->model_name, px->model_len, &nb) == 1) {
            gw_buf_free(&px->out);
            px->out = nb;
        } else {
            gw_buf_free(&nb);
        }
    } else if (!ok && !body_is_error_json(px->out.ptr ? px->out.ptr : "", px->out.len)) {
        /* a non-JSON error from the backend: wrap it so clients always get an OpenAI error */
        char msg[400];
        char *b;
        size_t show = px->out.len > 200 ? 200 : px->out.len;

        snprintf(msg, sizeof(msg), "backend for model '%s' answered HTTP %d%s%.*s",
                 px->model->conf->name, px->status, show ? ": " : " with an empty body",
                 (int)show, px->out.ptr ? px->out.ptr : "");
        b = error_body(msg, px->status >= 500 ? "server_error" : "invalid_request_error", NULL,
                       "backend_error");
        gw_buf_reset(&px->out);
        gw_buf_adds(&px->out, b);
        free(b);
        gw_buf_reset(&px->hdrs); /* the backend's Content-Type no longer applies */
    }
}

/*
 * A committed stream (200 + SSE already sent) whose backend failed or answered with
 * something other than a stream: the answer becomes one error event, without [DONE]
 * (upstream thread). The backend's own JSON error is passed on as it is.
 */
static void committed_error(gw_proxy_t *px)
{
    gw_buf_t *st = &px->stage;
    char msg[512];
    char *b = NULL;

    if (px->fail == GW_OK && px->headers_done && st->len > 0 && st->ptr[0] == '{' &&
        body_is_error_json(st->ptr, st->len) && memchr(st->ptr, '\n', st->len) == NULL) {
        gw_buf_t ev;

        gw_buf_init(&ev, st->len + 16);
        gw_buf_addf(&ev, "data: %.*s\n\n", (int)st->len, st->ptr);
        gw_buf_reset(st);
        gw_buf_add(st, ev.ptr, ev.len);
        gw_buf_free(&ev);
    } else {
        if (px->fail != GW_OK)
            snprintf(msg, sizeof(msg), "%s", px->fail_msg);
        else
            snprintf(msg, sizeof(msg), "backend for model '%s' answered HTTP %d instead of a "
                     "stream", px->model->conf->name, px->status);
        b = error_body(msg, "server_error", NULL,
                       px->fail == GW_ETIMEOUT ? "backend_timeout" : "backend_error");
        gw_buf_reset(st);
        gw_buf_addf(st, "data: %s\n\n", b);
        free(b);
    }
    pthread_mutex_lock(&px->mu);
    px->mode = M_SSE;
    pthread_mutex_unlock(&px->mu);
}

/* The backend is done with this request: end the lease (upstream thread; at the latest
 * from on_release, which follows on_completed's wait withdrawal, so leased is final). */
static void proxy_unlease(gw_proxy_t *px)
{
    if (px->leased) {
        px->leased = 0;
        gw_supervisor_release(px->model);
    }
}

static void xfer_on_done(gw_xfer_t *x, CURLcode rc)
{
    gw_proxy_t *px = GW_CONTAINER_OF(x, gw_proxy_t, x);

    /* before the client gets the last byte: a model is idle as soon as its backend is */
    proxy_unlease(px);

    px->up_rc = rc;
    if (!px->headers_done) {
        /* no response at all: the gateway answers */
        if (px->fail == GW_OK) {
            const char *why = px->errbuf[0] ? px->errbuf : curl_easy_strerror(rc);

            switch (rc) {
            case CURLE_COULDNT_CONNECT:
            case CURLE_COULDNT_RESOLVE_HOST:
                atomic_store(&px->model->state, GW_MODEL_UNREACHABLE);
                gw_tokcache_invalidate(px->srv->tokcache, px->model);
                set_fail(px, GW_EUNREACHABLE, "backend for model '%s' is unreachable: %s",
                         px->model->conf->name, why);
                break;
            case CURLE_OPERATION_TIMEDOUT:
                atomic_store(&px->model->state, GW_MODEL_UNREACHABLE);
                set_fail(px, GW_ETIMEOUT, "connecting to the backend for model '%s' timed out: %s",
                         px->model->conf->name, why);
                break;
            default:
                set_fail(px, GW_EUPSTREAM, "backend for model '%s' failed before answering: %s",
                         px->model->conf->name, why);
                break;
            }
        }
    } else if (px->mode == M_BUFFER) {
        if (rc == CURLE_OK && px->fail == GW_OK && !px->committed)
            finish_buffered(px);
        else if (rc == CURLE_OK && px->fail == GW_OK)
            ; /* committed: committed_error() below turns stage into an event */
        else
            set_fail(px, GW_EUPSTREAM, "backend for model '%s' failed mid-response: %s",
                     px->model->conf->name, px->errbuf[0] ? px->errbuf : curl_easy_strerror(rc));
    } else if (px->mode == M_SSE && !px->tok_stopped && (rc != CURLE_OK || px->fail != GW_OK)) {
        /* the backend died or was cut mid-stream: say so, and send no [DONE] */
        gw_buf_t *st = &px->stage;
        const char *code = px->fail == GW_ETIMEOUT ? "backend_timeout" : "backend_disconnected";
        char msg[512];
        char *b;

        snprintf(msg, sizeof(msg), "%s",
                 px->fail != GW_OK ? px->fail_msg : "backend connection lost mid-stream");
        if (px->fail == GW_OK && (px->errbuf[0] || rc != CURLE_OK)) {
            size_t l = strlen(msg);
            snprintf(msg + l, sizeof(msg) - l, ": %s",
                     px->errbuf[0] ? px->errbuf : curl_easy_strerror(rc));
        }
        b = error_body(msg, "server_error", NULL, code);
        gw_buf_reset(st);
        gw_buf_addf(st, "data: %s\n\n", b);
        free(b);
    }

    if (px->committed && (!px->headers_done || px->mode == M_BUFFER))
        committed_error(px);

    pthread_mutex_lock(&px->mu);
    if (px->mode == M_SSE && px->stage.len)
        gw_buf_add(&px->out, px->stage.ptr, px->stage.len); /* may exceed max: then lost */
    px->up_done = 1;
    px->decided = 1;
    wake(px);
    pthread_mutex_unlock(&px->mu);
    gw_buf_reset(&px->stage);
}

static void xfer_on_hup(gw_xfer_t *x)
{
    gw_proxy_t *px = GW_CONTAINER_OF(x, gw_proxy_t, x);

    pthread_mutex_lock(&px->mu);
    px->client_gone = 1;
    wake(px);
    pthread_mutex_unlock(&px->mu);
    gw_upstream_abort(px->up, x, CURLE_ABORTED_BY_CALLBACK);
}

static void xfer_on_deadline(gw_xfer_t *x)
{
    gw_proxy_t *px = GW_CONTAINER_OF(x, gw_proxy_t, x);
    const gw_conf_t *conf = px->srv->conf;

    if (!px->connected) {
        atomic_store(&px->model->state, GW_MODEL_UNREACHABLE);
        set_fail(px, GW_ETIMEOUT, "connecting to the backend for model '%s' timed out after %u ms",
                 px->model->conf->name, conf->connect_timeout_ms);
    } else if (!px->headers_done)
        set_fail(px, GW_ETIMEOUT, "backend for model '%s' sent no response within %u ms",
                 px->model->conf->name, conf->first_byte_timeout_ms);
    else
        set_fail(px, GW_ETIMEOUT, "backend for model '%s' sent nothing for %u ms",
                 px->model->conf->name, conf->idle_stream_timeout_ms);
    gw_upstream_abort(px->up, x, CURLE_OPERATION_TIMEDOUT);
}

static void xfer_on_release(gw_xfer_t *x)
{
    gw_proxy_t *px = GW_CONTAINER_OF(x, gw_proxy_t, x);

    if (px->tok_fetch) {
        gw_fetch_cancel(px->tok_fetch);
        px->tok_fetch = NULL;
    }
    if (px->tok_mode)
        gw_tokcache_forget(px->srv->tokcache, px->model, &px->tok_waiter);
    proxy_unlease(px);
    atomic_fetch_sub(&px->model->inflight, 1);
    proxy_unref(px);
}

static const gw_xfer_ops_t proxy_ops = {
    xfer_on_done,
    xfer_on_hup,
    xfer_on_deadline,
    xfer_on_release,
};


/* --- MHD worker threads ---------------------------------------------------- */

static ssize_t on_read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
    gw_proxy_t *px = cls;
    ssize_t rc;

    (void)pos;
    pthread_mutex_lock(&px->mu);
    if (px->out.len > 0 && !px->client_gone) {
        size_t n = px->out.len < max ? px->out.len : max;

        memcpy(buf, px->out.ptr, n);
        gw_buf_consume(&px->out, n);
        if (px->paused && !px->unpause_posted &&
            px->out.len <= px->srv->conf->max_stream_buffer / 4) {
            px->unpause_posted = 1;
            gw_upstream_unpause(px->up, &px->x);
        }
        rc = (ssize_t)n;
    } else if (px->client_gone || px->shutdown) {
        rc = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (px->up_done) {
        rc = (px->mode == M_RAW && px->up_rc != CURLE_OK) ? MHD_CONTENT_READER_END_WITH_ERROR
                                                          : MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        px->suspended = 1;
        MHD_suspend_connection(px->conn);
        rc = 0;
    }
    pthread_mutex_unlock(&px->mu);
    return rc;
}

static void on_free_stream(void *cls)
{
    proxy_unref(cls);
}

static void add_forwarded_headers(struct MHD_Response *resp, const gw_buf_t *h)
{
    const char *p = h->ptr, *end = h->ptr + h->len;

    while (p && p < end) {
        const char *name = p, *value = p + strlen(p) + 1;

        MHD_add_response_header(resp, name, value);
        p = value + strlen(value) + 1;
    }
}

static int has_header(const gw_buf_t *h, const char *want)
{
    const char *p = h->ptr, *end = h->ptr + h->len;

    while (p && p < end) {
        const char *value = p + strlen(p) + 1;

        if (ieq(p, want))
            return 1;
        p = value + strlen(value) + 1;
    }
    return 0;
}

/* The handler runs again after the upstream thread resumed us with a decision. */
static enum MHD_Result respond_decided(gw_req_t *r, struct MHD_Connection *c)
{
    gw_proxy_t *px = r->px;
    struct MHD_Response *resp;
    enum MHD_Result rc;

    pthread_mutex_lock(&px->mu);
    if (px->client_gone || px->shutdown || !px->decided) {
        pthread_mutex_unlock(&px->mu);
        return MHD_NO;
    }
    pthread_mutex_unlock(&px->mu);

    if (px->fail != GW_OK && (px->mode == M_BUFFER || px->mode == M_NONE)) {
        return queue_error(r, c, px->fail, px->fail_param[0] ? px->fail_param : NULL, "%s",
                           px->fail_msg);
    }
    if (px->mode == M_BUFFER) {
        size_t len;
        char *body;

        /* the upstream side is done with out: up_done was set under the lock */
        body = gw_buf_take(&px->out, &len);
        resp = MHD_create_response_from_buffer(len, body ? body : (char *)"",
                                               body ? MHD_RESPMEM_MUST_FREE
                                                    : MHD_RESPMEM_PERSISTENT);
        add_forwarded_headers(resp, &px->hdrs);
        if (!has_header(&px->hdrs, "Content-Type"))
            MHD_add_response_header(resp, "Content-Type", "application/json");
    } else {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, GW_STREAM_BLOCK,
                                                 on_read_stream, px, on_free_stream);
        atomic_fetch_add(&px->refs, 1);
        add_forwarded_headers(resp, &px->hdrs);
        if (px->mode == M_SSE) {
            if (!has_header(&px->hdrs, "Cache-Control"))
                MHD_add_response_header(resp, "Cache-Control", "no-cache");
            if (!has_header(&px->hdrs, "X-Accel-Buffering"))
                MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        }
    }
    add_common_headers(r, resp, px->mode == M_BUFFER);
    r->status = px->status;
    rc = MHD_queue_response(c, (unsigned)px->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result add_req_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    gw_proxy_t *px = cls;
    char line[8192];
    int n;

    (void)kind;
    if (drop_request_header(key))
        return MHD_YES;
    n = snprintf(line, sizeof(line), "%s: %s", key, value ? value : "");
    if (n > 0 && (size_t)n < sizeof(line))
        px->req_headers = curl_slist_append(px->req_headers, line);
    return MHD_YES;
}

/* --- the backend's supervisor ------------------------------------------------ */

/* Posts the request upstream: at once, or after the token-ID prelude (which talks to the
 * same backend, so it too waits for the lease). */
static void proxy_post(gw_proxy_t *px)
{
    if (px->tok_mode) {
        px->x.started = 1;
        gw_upstream_call(px->up, &px->tok_cmd, gw__tok_prelude, px);
    } else {
        gw_upstream_start(px->up, &px->x);
    }
}

/* The lease is held: point the transfer at the backend and arm its connect deadline.
 * Before the transfer is posted (the easy handle is not in the multi yet). */
static void proxy_begin(gw_proxy_t *px)
{
    gw_buf_t url;

    gw_buf_init(&url, 32768);
    gw_buf_adds(&url, px->model->upstream); /* a spawned model's is set before serving */
    gw_buf_adds(&url, px->url_tail);
    curl_easy_setopt(px->x.easy, CURLOPT_URL, url.ptr);
    gw_buf_free(&url);
    /* the connect deadline; on_up_connected switches to the first-byte one */
    px->x.deadline_ms = gw_now_ms() + px->srv->conf->connect_timeout_ms;
}

/* Supervisor thread: the model is ready (the lease is ours) or could not be started. */
static void on_backend_ready(gw_sup_wait_t *w, gw_err_t rc, const char *msg)
{
    gw_proxy_t *px = GW_CONTAINER_OF(w, gw_proxy_t, wait);

    pthread_mutex_lock(&px->mu);
    if (rc == GW_OK) {
        px->leased = 1;
        if (px->conn && !px->client_gone && !px->shutdown) {
            proxy_begin(px);
            /* posted under mu: on_completed's cancel (posted after it takes mu) follows */
            proxy_post(px);
        }
    } else if (px->committed) {
        char *b = error_body(msg, gw_err_type(rc), NULL, gw_err_code(rc));

        gw_buf_addf(&px->out, "data: %s\n\n", b);
        free(b);
        px->up_done = 1;
        wake(px);
    } else {
        set_fail(px, rc, "%s", msg);
        px->decided = 1;
        px->up_done = 1;
        wake(px);
    }
    pthread_mutex_unlock(&px->mu);
}

/* Supervisor thread, every backends.loading_ping_ms: keep a committed stream open. */
static void on_backend_loading(gw_sup_wait_t *w)
{
    gw_proxy_t *px = GW_CONTAINER_OF(w, gw_proxy_t, wait);

    pthread_mutex_lock(&px->mu);
    if (px->committed && !px->up_done && !px->client_gone) {
        gw_buf_addf(&px->out, ": loading model %s\n\n", px->model->conf->name);
        wake(px);
    }
    pthread_mutex_unlock(&px->mu);
}

/* A stream that waits for its model: 200 + SSE headers now, events later. */
static enum MHD_Result commit_stream(gw_req_t *r, struct MHD_Connection *c, gw_proxy_t *px)
{
    struct MHD_Response *resp;
    enum MHD_Result rc;

    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, GW_STREAM_BLOCK, on_read_stream,
                                             px, on_free_stream);
    atomic_fetch_add(&px->refs, 1);
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    add_common_headers(r, resp, 0);
    r->status = 200;
    rc = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Creates the relay for a request and posts it upstream. Takes ownership of nothing. */
static enum MHD_Result start_proxy(gw_req_t *r, struct MHD_Connection *c, gw_model_t *m,
                                   const char *path, size_t path_len, int rewrite_model,
                                   const char *method, json_t *tok_root, gw_tok_req_t *tok_req)
{
    gw_server_t *srv = r->srv;
    const gw_conf_t *conf = srv->conf;
    gw_proxy_t *px = gw_xcalloc(1, sizeof(*px));
    gw_buf_t url;
    CURL *e;
    const union MHD_ConnectionInfo *ci;
    gw_errbuf_t err;
    gw_err_t rc;

    gw_xfer_init(&px->x, &proxy_ops);
    px->srv = srv;
    px->up = tok_root ? srv->up : srv->ups[atomic_fetch_add(&srv->next_up, 1) % srv->n_up];
    pthread_mutex_init(&px->mu, NULL);
    atomic_init(&px->refs, 2); /* request + upstream */
    px->conn = c;
    px->route = r->route->kind;
    px->model = m;
    px->rewrite_model = rewrite_model;
    px->model_name = gw_xstrdup(r->model);
    px->model_len = strlen(r->model);
    px->idle_ms = conf->idle_stream_timeout_ms;
    gw_buf_init(&px->out, conf->max_response_bytes > conf->max_stream_buffer * 2 + (1u << 20)
                              ? conf->max_response_bytes
                              : conf->max_stream_buffer * 2 + (1u << 20));
    gw_buf_init(&px->hdrs, GW_MAX_HEADERS_BYTES);
    gw_buf_init(&px->stage, GW_MAX_SSE_EVENT * 2);
    gw_sse_init(&px->sse, GW_MAX_SSE_EVENT);
    px->body = gw_buf_take(&r->body, &px->body_len);
    if (tok_root) {
        px->tok_mode = 1;
        px->tok_root = tok_root;  /* steals */
        px->tok_req = *tok_req;   /* steals the stop_ids array */
        px->tok_waiter.cb = gw__tok_on_vocab;
    }

    /* request headers: everything but hop-by-hop and the client's own key */
    MHD_get_connection_values(c, MHD_HEADER_KIND, add_req_header, px);
    if (!MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"))
        px->req_headers = curl_slist_append(px->req_headers, "Content-Type:");
    if (!MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept"))
        px->req_headers = curl_slist_append(px->req_headers, "Accept:");
    px->req_headers = curl_slist_append(px->req_headers, "Expect:");
    if (m->conf->api_key) {
        char auth[1024];

        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", m->conf->api_key);
        px->req_headers = curl_slist_append(px->req_headers, auth);
    }

    gw_buf_init(&url, 16384);
    gw_buf_add(&url, path, path_len);
    if (r->uri[r->path_len] == '?')
        gw_buf_adds(&url, r->uri + r->path_len);
    px->url_tail = gw_buf_take(&url, NULL); /* the base comes with the lease */

    e = curl_easy_init();
    px->x.easy = e;
    curl_easy_setopt(e, CURLOPT_PRIVATE, px);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* the connect timeout is ours (a deadline switched in on_up_connected): curl's own
     * CONNECTTIMEOUT keeps waking every transfer long after it connected, which made a
     * few hundred silent streams cost ~60 wakeups a second */
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_up_connected);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, px);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, 4L); /* llama-server drops idle ones after 5 s */
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_up_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, px);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_up_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, px);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, px->errbuf);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, px->req_headers);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, GW_CURL_BUFFER);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)px->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, px->body ? px->body : "");
    }

    pthread_mutex_lock(&srv->mu);
    px->next = srv->proxies;
    if (srv->proxies)
        srv->proxies->prev = px;
    srv->proxies = px;
    pthread_mutex_unlock(&srv->mu);

    atomic_fetch_add(&m->inflight, 1);
    atomic_fetch_add(&m->requests, 1);
    r->px = px;
    r->phase = PH_WAIT;

    /* The backend: ready now, or once the supervisor has started it (on_backend_ready).
     * px->mu is held across the acquire so that the callback, which takes it, finds the
     * connection suspended or the stream committed. */
    px->wait.on_done = on_backend_ready;
    px->wait.on_tick = r->stream ? on_backend_loading : NULL;
    memset(&err, 0, sizeof(err));
    pthread_mutex_lock(&px->mu);
    rc = gw_supervisor_acquire(m, &px->wait, &err);
    if (rc == GW_OK && !px->wait.queued) {
        px->leased = 1;
        proxy_begin(px);
    }
    if (rc == GW_OK && px->wait.queued && r->stream) {
        px->committed = 1; /* answered below: 200 + SSE, then comments until the start */
        px->mode = M_SSE;
        px->decided = 1;
        gw_buf_addf(&px->out, ": loading model %s\n\n", m->conf->name);
    } else if (rc == GW_OK) {
        px->suspended = 1;
        MHD_suspend_connection(c);
    }
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci && rc == GW_OK)
        gw_upstream_watch(px->up, &px->x, ci->connect_fd);
    if (atomic_load(&srv->stopping)) {
        px->shutdown = 1;
        wake(px);
    }
    pthread_mutex_unlock(&px->mu);
    if (rc != GW_OK) {
        r->phase = PH_DONE; /* on_completed still cancels the (never started) transfer */
        return queue_error(r, c, rc, NULL, "%s", err.msg);
    }
    if (px->wait.queued)
        GW_LOG(GW_LOG_DEBUG, "req=%s waits for model %s to start%s", r->id, m->conf->name,
               px->committed ? " (stream committed)" : "");
    if (px->committed) {
        r->phase = PH_DONE;
        return commit_stream(r, c, px);
    }
    if (!px->wait.queued)
        proxy_post(px);
    return MHD_YES;
}

/* 403: the request's key may not use this model (named as the client named it). */
static enum MHD_Result deny_model(gw_req_t *r, struct MHD_Connection *c, const char *name,
                                  size_t len)
{
    return queue_error(r, c, GW_EFORBIDDEN, "model",
                       "The API key '%s' is not allowed to use the model '%.*s'",
                       gw_guard_key_name(&r->sec), (int)(len > 200 ? 200 : len), name);
}

/* 400 before any parser sees a body nested deeper than limits.max_json_depth. */
static int body_too_deep(gw_req_t *r)
{
    return !gw_json_depth_ok(r->body.ptr, r->body.len, r->srv->conf->max_json_depth);
}

static enum MHD_Result queue_too_deep(gw_req_t *r, struct MHD_Connection *c)
{
    return queue_error(r, c, GW_EJSONDEPTH, NULL,
                       "the JSON request body is nested deeper than %u levels",
                       r->srv->conf->max_json_depth);
}

/* ================================================================ admin ====== */

/* POST /admin/models/{id}/load|unload: waits (suspended) for the supervisor's answer. */
typedef struct gw_admin {
    gw_sup_wait_t wait;
    gw_model_t *m;
    pthread_mutex_t mu;
    struct MHD_Connection *conn; /* under mu; NULL once MHD is done with the request */
    int suspended, done, shutdown;
    gw_err_t rc;
    char msg[320];
    struct gw_admin *prev, *next; /* srv->admins, under srv->mu */
} gw_admin_t;

static json_t *model_entry(gw_server_t *srv, gw_model_t *m, const char *id, const char *alias_of);

/* Supervisor thread: the load or unload is over. */
static void on_admin_done(gw_sup_wait_t *w, gw_err_t rc, const char *msg)
{
    gw_admin_t *a = GW_CONTAINER_OF(w, gw_admin_t, wait);

    pthread_mutex_lock(&a->mu);
    a->done = 1;
    a->rc = rc;
    snprintf(a->msg, sizeof(a->msg), "%s", msg);
    if (a->suspended && a->conn) {
        a->suspended = 0;
        MHD_resume_connection(a->conn);
    }
    pthread_mutex_unlock(&a->mu);
}

static enum MHD_Result admin_answer(gw_req_t *r, struct MHD_Connection *c, gw_model_t *m)
{
    json_t *o = model_entry(r->srv, m, m->conf->name, NULL);
    char *s = json_dumps(o, JSON_COMPACT);

    json_decref(o);
    return queue_body(r, c, 200, s, "application/json");
}

static void admin_free(gw_server_t *srv, gw_admin_t *a)
{
    pthread_mutex_lock(&a->mu);
    a->conn = NULL;
    pthread_mutex_unlock(&a->mu);
    gw_supervisor_cancel(a->m, &a->wait);
    pthread_mutex_lock(&srv->mu);
    if (a->prev)
        a->prev->next = a->next;
    else if (srv->admins == a)
        srv->admins = a->next;
    if (a->next)
        a->next->prev = a->prev;
    pthread_mutex_unlock(&srv->mu);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static enum MHD_Result respond_admin(gw_req_t *r, struct MHD_Connection *c)
{
    gw_admin_t *a = r->admin;
    int done;

    pthread_mutex_lock(&a->mu);
    done = a->done;
    pthread_mutex_unlock(&a->mu);
    if (!done)
        return MHD_NO; /* resumed for shutdown */
    if (a->rc != GW_OK)
        return queue_error(r, c, a->rc, NULL, "%s", a->msg);
    return admin_answer(r, c, a->m);
}

/*
 * load: starts the model if needed and answers when it is ready (200 with its entry) or
 * failed (503). unload: answers when the process has exited (200); a busy model is not
 * stopped (409 model_busy). Both answer 400 for a model with a fixed upstream.
 */
static enum MHD_Result h_admin(gw_req_t *r, struct MHD_Connection *c)
{
    gw_server_t *srv = r->srv;
    const char *p = r->uri + strlen("/admin/models/"), *end = r->uri + r->path_len, *slash;
    gw_admin_t *a;
    gw_model_t *m;
    gw_errbuf_t err;
    gw_err_t rc;
    int unload;

    for (slash = end; slash > p && slash[-1] != '/'; slash--)
        ;
    if (slash <= p + 1)
        return queue_error(r, c, GW_ENOROUTE, NULL, "no route for POST %.*s", (int)r->path_len,
                           r->uri);
    if ((size_t)(end - slash) == 4 && memcmp(slash, "load", 4) == 0)
        unload = 0;
    else if ((size_t)(end - slash) == 6 && memcmp(slash, "unload", 6) == 0)
        unload = 1;
    else
        return queue_error(r, c, GW_ENOROUTE, NULL,
                           "no route for POST %.*s (expected .../load or .../unload)",
                           (int)r->path_len, r->uri);
    snprintf(r->model, sizeof(r->model), "%.*s", (int)(slash - 1 - p), p);
    m = gw_registry_find(srv->reg, p, (size_t)(slash - 1 - p));
    if (m == NULL)
        return queue_error(r, c, GW_ENOMODEL, "model", "The model '%s' does not exist",
                           r->model);
    if (!gw_guard_allows(&r->sec, m))
        return deny_model(r, c, r->model, strlen(r->model));

    a = gw_xcalloc(1, sizeof(*a));
    a->m = m;
    a->conn = c;
    a->wait.on_done = on_admin_done;
    pthread_mutex_init(&a->mu, NULL);
    r->admin = a; /* listed first, so that a stop from now on finds it (lock order: srv, a) */
    pthread_mutex_lock(&srv->mu);
    a->next = srv->admins;
    if (srv->admins)
        srv->admins->prev = a;
    srv->admins = a;
    pthread_mutex_unlock(&srv->mu);

    memset(&err, 0, sizeof(err));
    pthread_mutex_lock(&a->mu);
    rc = unload ? gw_supervisor_unload(m, &a->wait, &err) : gw_supervisor_load(m, &a->wait, &err);
    if (rc == GW_OK && a->wait.queued) {
        a->suspended = 1;
        MHD_suspend_connection(c);
        r->phase = PH_WAIT;
        if (atomic_load(&srv->stopping)) {
            a->shutdown = 1;
            a->suspended = 0;
            MHD_resume_connection(c);
        }
        pthread_mutex_unlock(&a->mu);
        return MHD_YES;
    }
    pthread_mutex_unlock(&a->mu);
    /* answered at once; on_completed frees a */
    if (rc != GW_OK)
        return queue_error(r, c, rc, "model", "%s", err.msg);
    return admin_answer(r, c, m);
}

/* ================================================================ handlers === */

static enum MHD_Result h_health(gw_req_t *r, struct MHD_Connection *c)
{
    return queue_body(r, c, 200, gw_xstrdup("{\"status\":\"ok\"}"), "application/json");
}

static json_t *model_entry(gw_server_t *srv, gw_model_t *m, const char *id, const char *alias_of)
{
    gw_sup_info_t si;
    json_t *o;
    size_t j;

    gw_supervisor_info(m, &si);
    o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", id, "object", "model", "created",
                  (json_int_t)srv->started, "owned_by", "llama-gateway", "state",
                  si.managed ? gw_proc_state_name(si.state)
                             : gw_model_state_name(atomic_load(&m->state)));
    if (si.managed) {
        /* a spawned backend: its process (backend/supervisor.h) */
        json_object_set_new(o, "port", si.port ? json_integer(si.port) : json_null());
        json_object_set_new(o, "pid", si.pid > 0 ? json_integer(si.pid) : json_null());
        json_object_set_new(o, "vram_mb", json_integer(si.vram_mb));
        json_object_set_new(o, "queued", json_integer((json_int_t)si.queued));
        if (si.failures)
            json_object_set_new(o, "failures", json_integer(si.failures));
        if (si.retry_in_ms)
            json_object_set_new(o, "retry_in_ms", json_integer((json_int_t)si.retry_in_ms));
        if (si.last_error[0])
            json_object_set_new(o, "last_error", json_string(si.last_error));
    }

    if (alias_of) {
        json_object_set_new(o, "alias_of", json_string(alias_of));
    } else {
        json_t *al = json_array();

        for (j = 0; j < m->conf->n_aliases; j++)
            json_array_append_new(al, json_string(m->conf->aliases[j]));
        json_object_set_new(o, "aliases", al);
    }
    json_object_set_new(o, "inflight", json_integer(atomic_load(&m->inflight)));
    return o;
}

static enum MHD_Result h_models(gw_req_t *r, struct MHD_Connection *c)
{
    gw_server_t *srv = r->srv;
    json_t *data = json_array(), *root;
    size_t i, j, n = gw_registry_count(srv->reg);

    for (i = 0; i < n; i++) {
        gw_model_t *m = gw_registry_at(srv->reg, i);

        if (!gw_guard_allows(&r->sec, m))
            continue; /* a key limited to some models sees only those */
        json_array_append_new(data, model_entry(srv, m, m->conf->name, NULL));
        for (j = 0; j < m->conf->n_aliases; j++)
            json_array_append_new(data, model_entry(srv, m, m->conf->aliases[j], m->conf->name));
    }
    root = json_pack("{s:s, s:o}", "object", "list", "data", data);
    {
        char *s = json_dumps(root, JSON_COMPACT);

        json_decref(root);
        return queue_body(r, c, 200, s, "application/json");
    }
}

static enum MHD_Result h_model_one(gw_req_t *r, struct MHD_Connection *c)
{
    gw_server_t *srv = r->srv;
    const char *id = r->uri + strlen("/v1/models/");
    size_t len = r->path_len - strlen("/v1/models/");
    gw_model_t *m = gw_registry_find(srv->reg, id, len);
    json_t *o;
    char *s;

    if (m == NULL)
        return queue_error(r, c, GW_ENOMODEL, "model", "The model '%.*s' does not exist",
                           (int)len, id);
    if (!gw_guard_allows(&r->sec, m))
        return deny_model(r, c, id, len);
    o = model_entry(srv, m, m->conf->name, NULL);
    if (strlen(m->conf->name) != len || memcmp(m->conf->name, id, len) != 0) {
        json_object_set_new(o, "id", json_stringn(id, len));
        json_object_set_new(o, "alias_of", json_string(m->conf->name));
        json_object_del(o, "aliases");
    }
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return queue_body(r, c, 200, s, "application/json");
}

static enum MHD_Result h_oai(gw_req_t *r, struct MHD_Connection *c, const char *method)
{
    gw_errbuf_t err;
    json_t *root = NULL;
    gw_err_t e;
    gw_model_t *m;
    const char *name;
    size_t name_len;

    if (body_too_deep(r))
        return queue_too_deep(r, c);
    e = gw_oai_parse(r->body.ptr, r->body.len, (gw_oai_kind_t)r->route->oai_kind, &root, &err);
    if (e != GW_OK)
        return queue_error(r, c, e, err.param, "%s", err.msg);
    name = json_string_value(json_object_get(root, "model"));
    name_len = json_string_length(json_object_get(root, "model"));
    snprintf(r->model, sizeof(r->model), "%.*s", (int)name_len, name);
    m = gw_registry_find(r->srv->reg, name, name_len);
    if (m == NULL) {
        enum MHD_Result rc = queue_error(r, c, GW_ENOMODEL, "model",
                                         "The model '%s' does not exist or is not configured",
                                         r->model);
        json_decref(root);
        return rc;
    }
    if (strlen(name) != name_len || name_len >= sizeof(r->model)) {
        json_decref(root);
        return queue_error(r, c, GW_EPARAM, "model", "'model' is not a valid model name");
    }
    if (!gw_guard_allows(&r->sec, m)) {
        json_decref(root);
        return deny_model(r, c, r->model, strlen(r->model));
    }
    r->stream = json_is_true(json_object_get(root, "stream"));
    if (r->route->oai_kind == GW_OAI_CHAT || r->route->oai_kind == GW_OAI_COMPLETIONS) {
        gw_tok_req_t tr;
        int t = gw_tok_req_detect(root, r->route->oai_kind == GW_OAI_CHAT,
                                  r->srv->conf->max_stop_token_ids, &tr, &err);

        if (t < 0) {
            json_decref(root);
            return queue_error(r, c, GW_EPARAM, err.param, "%s", err.msg);
        }
        if (t == 1)
            return start_proxy(r, c, m, r->uri, r->path_len, 1, method, root, &tr);
    }
    json_decref(root);
    return start_proxy(r, c, m, r->uri, r->path_len, 1, method, NULL, NULL);
}

static enum MHD_Result h_upstream(gw_req_t *r, struct MHD_Connection *c, const char *method)
{
    const char *p = r->uri + strlen("/upstream/");
    const char *end = r->uri + r->path_len;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    size_t name_len = slash ? (size_t)(slash - p) : (size_t)(end - p);
    gw_model_t *m = gw_registry_find(r->srv->reg, p, name_len);

    snprintf(r->model, sizeof(r->model), "%.*s", (int)name_len, p);
    if (m == NULL)
        return queue_error(r, c, GW_ENOMODEL, "model", "The model '%.*s' does not exist",
                           (int)name_len, p);
    if (!gw_guard_allows(&r->sec, m))
        return deny_model(r, c, p, name_len);
    if (slash && gw_guard_dot_segment(slash, (size_t)(end - slash)))
        return queue_error(r, c, GW_EBADREQ, NULL,
                           "the path after /upstream/%.*s must not contain '.' or '..' segments",
                           (int)name_len, p);
    if (r->body.len > 0 && (r->body.ptr[strspn(r->body.ptr, " \t\r\n")] == '{' ||
                            r->body.ptr[strspn(r->body.ptr, " \t\r\n")] == '[') &&
        body_too_deep(r))
        return queue_too_deep(r, c);
    if (slash == NULL)
        return start_proxy(r, c, m, "/", 1, 0, method, NULL, NULL);
    return start_proxy(r, c, m, slash, (size_t)(end - slash), 0, method, NULL, NULL);
}

/* A CORS preflight: 204, CORS headers only for an allowed origin (cors.h). */
static enum MHD_Result respond_preflight(gw_req_t *r, struct MHD_Connection *c)
{
    struct MHD_Response *resp = gw_guard_preflight(r->srv->guard, &r->sec, c);
    enum MHD_Result rc;

    MHD_add_response_header(resp, "X-Request-Id", r->id);
    r->status = 204;
    rc = MHD_queue_response(c, 204, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result dispatch(gw_req_t *r, struct MHD_Connection *c, const char *method)
{
    const gw_conf_t *conf = r->srv->conf;

    if (r->sec.preflight)
        return respond_preflight(r, c);
    if (r->sec.early != GW_OK)
        return queue_error(r, c, r->sec.early, NULL, "%s", r->sec.msg);
    if (r->too_big)
        return queue_error(r, c, GW_ETOOBIG, NULL,
                           "request body exceeds the limit of %zu bytes", conf->max_body_bytes);
    if (r->route == NULL) {
        if (r->wrong_method)
            return queue_error(r, c, GW_EMETHOD, NULL, "method %s is not allowed on %.*s",
                               method, (int)r->path_len, r->uri);
        return queue_error(r, c, GW_ENOROUTE, NULL, "no route for %s %.*s", method,
                           (int)r->path_len, r->uri);
    }
    switch (r->route->kind) {
    case R_HEALTH:
        return h_health(r, c);
    case R_MODELS:
        return h_models(r, c);
    case R_MODEL_ONE:
        return h_model_one(r, c);
    case R_OAI:
        return h_oai(r, c, method);
    case R_UPSTREAM:
        return h_upstream(r, c, method);
    case R_ADMIN:
        return h_admin(r, c);
    default:
        return queue_error(r, c, GW_ENOROUTE, NULL, "no route");
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    gw_server_t *srv = cls;
    gw_req_t *r = *con_cls;

    (void)url;
    (void)version;
    if (r == NULL)
        return MHD_NO; /* no context: the uri callback did not run */
    switch (r->phase) {
    case PH_NEW: {
        const char *cl;

        r->phase = PH_BODY;
        snprintf(r->method, sizeof(r->method), "%s", method);
        make_request_id(c, r->id, sizeof(r->id));
        r->route = route_find(r->uri, r->path_len, method, &r->wrong_method);
        if (r->route == NULL || r->route->kind == R_HEALTH || r->route->kind == R_MODELS ||
            r->route->kind == R_MODEL_ONE || r->route->kind == R_ADMIN)
            r->discard = 1;
        gw_buf_init(&r->body, srv->conf->max_body_bytes);
        gw_guard_admit(srv->guard, c, &r->sec, method, r->route && r->route->kind == R_HEALTH);
        if (r->sec.early != GW_OK || r->sec.preflight)
            r->discard = 1; /* answered after the body, which nobody needs */
        if (r->sec.answer_now) {
            r->phase = PH_DONE;
            return queue_error(r, c, r->sec.early, NULL, "%s", r->sec.msg);
        }
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > srv->conf->max_body_bytes) {
            r->phase = PH_DONE;
            return queue_error(r, c, GW_ETOOBIG, NULL,
                               "request body of %s bytes exceeds the limit of %zu bytes", cl,
                               srv->conf->max_body_bytes);
        }
        return MHD_YES;
    }
    case PH_BODY:
        if (*upload_data_size) {
            if (!r->too_big && !r->discard &&
                gw_buf_add(&r->body, upload_data, *upload_data_size) != GW_OK)
                r->too_big = 1;
            *upload_data_size = 0;
            return MHD_YES;
        }
        r->phase = PH_DONE;
        gw_guard_body_done(srv->guard, &r->sec);
        return dispatch(r, c, method);
    case PH_WAIT:
        if (*upload_data_size)
            return MHD_NO;
        r->phase = PH_DONE;
        if (r->admin)
            return respond_admin(r, c);
        return respond_decided(r, c);
    default:
        if (*upload_data_size) {
            *upload_data_size = 0; /* draining after an early answer */
            return MHD_YES;
        }
        return MHD_YES;
    }
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    gw_req_t *r = gw_xcalloc(1, sizeof(*r));
    gw_server_t *srv = cls;
    const char *q;

    r->srv = srv;
    gw_guard_on_uri(srv->guard, c, &r->sec, uri);
    r->uri = gw_xstrdup(uri);
    q = strchr(r->uri, '?');
    r->path_len = q ? (size_t)(q - r->uri) : strlen(r->uri);
    r->t_start_us = gw_now_us();
    snprintf(r->id, sizeof(r->id), "-");
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    gw_server_t *srv = cls;
    gw_req_t *r = *con_cls;

    (void)c;
    if (r == NULL)
        return;
    *con_cls = NULL;
    if (r->px) {
        gw_proxy_t *px = r->px;

        pthread_mutex_lock(&px->mu);
        px->conn = NULL;
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            px->client_gone = 1;
        gw_upstream_unwatch(px->up, &px->x);
        pthread_mutex_unlock(&px->mu);
        gw_supervisor_cancel(px->model, &px->wait); /* before the cancel: see on_backend_ready */
        gw_upstream_cancel(px->up, &px->x);
        proxy_unref(px);
    }
    if (r->admin)
        admin_free(srv, r->admin);
    gw_guard_done(srv->guard, &r->sec);
    if (r->sec.timed_out && r->status == 0)
        r->status = 408; /* the reaper answered (guard.h) */
    if (r->phase != PH_NEW || r->sec.timed_out) {
        /* client-controlled text is escaped; the key appears by name only */
        char method[40], path[256], model[128];

        GW_LOG(GW_LOG_INFO, "%s %s model=%s status=%d us=%llu req=%s key=%s client=%s%s",
               r->method[0] ? gw_log_safe(method, sizeof(method), r->method, strlen(r->method))
                            : "-",
               gw_log_safe(path, sizeof(path), r->uri, r->path_len),
               r->model[0] ? gw_log_safe(model, sizeof(model), r->model, strlen(r->model)) : "-",
               r->status, (unsigned long long)(gw_now_us() - r->t_start_us), r->id,
               gw_guard_key_name(&r->sec), r->sec.client[0] ? r->sec.client : "-",
               toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (client gone)");
    }
    gw_buf_free(&r->body);
    free(r->uri);
    free(r);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    (void)cls;
    if (gw_log_level < GW_LOG_DEBUG)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    GW_LOG(GW_LOG_DEBUG, "mhd: %s", msg);
}

/* ================================================================ lifecycle == */

gw_err_t gw_server_start(const gw_conf_t *conf, gw_registry_t *reg, gw_server_t **out,
                         gw_errbuf_t *err)
{
    gw_server_t *srv = gw_xcalloc(1, sizeof(*srv));
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *di;
    unsigned timeout_s = (conf->request_timeout_ms + 999) / 1000, i;

    *out = NULL;
    memset(&ss, 0, sizeof(ss));
    {
        struct addrinfo hints, *ai = NULL;
        char port[8];
        int grc;

        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        snprintf(port, sizeof(port), "%u", (unsigned)conf->listen_port);
        grc = getaddrinfo(conf->listen_host, port, &hints, &ai);
        if (grc != 0 || ai == NULL || ai->ai_addrlen > sizeof(ss)) {
            if (ai)
                freeaddrinfo(ai);
            free(srv);
            return gw_errf(err, GW_EBADREQ, "listen.host", "listen.host: cannot resolve \"%s\": %s",
                           conf->listen_host, grc ? gai_strerror(grc) : "no address");
        }
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        if (ai->ai_family == AF_INET6)
            flags |= MHD_USE_IPv6;
        freeaddrinfo(ai);
    }
    srv->conf = conf;
    srv->reg = reg;
    srv->started = time(NULL);
    if (gw_guard_new(conf, reg, &srv->guard, err) != GW_OK) {
        free(srv);
        return GW_EINTERNAL;
    }
    gw_guard_log_start(srv->guard);
    flags |= gw_guard_mhd_flags(srv->guard);
    pthread_mutex_init(&srv->mu, NULL);
    srv->n_up = conf->upstream_threads ? conf->upstream_threads : 1;
    if (srv->n_up > GW_MAX_UPSTREAM_THREADS)
        srv->n_up = GW_MAX_UPSTREAM_THREADS;
    for (i = 0; i < srv->n_up; i++)
        srv->ups[i] = gw_upstream_new();
    srv->up = srv->ups[0];
    srv->tokcache = gw_tokcache_new(srv->up, reg, (long)conf->first_byte_timeout_ms);

    srv->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(conf->threads > 1 ? conf->threads : 0), MHD_OPTION_CONNECTION_LIMIT,
        conf->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        gw_guard_conn_memory(srv->guard, GW_CONN_MEMORY), MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, srv, MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv, MHD_OPTION_ARRAY,
        gw_guard_mhd_options(srv->guard), MHD_OPTION_END);
    if (srv->mhd == NULL) {
        int eno = errno;

        gw_tokcache_free(srv->tokcache);
        for (i = 0; i < srv->n_up; i++)
            gw_upstream_free(srv->ups[i]);
        gw_guard_free(srv->guard);
        pthread_mutex_destroy(&srv->mu);
        free(srv);
        return gw_errf(err, GW_EINTERNAL, "listen",
                       "cannot listen on %s port %u: %s", conf->listen_host,
                       (unsigned)conf->listen_port, eno ? strerror(eno) : "MHD failed");
    }
    di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : conf->listen_port;
    *out = srv;
    return GW_OK;
}

uint16_t gw_server_port(const gw_server_t *s)
{
    return s->port;
}

static void free_tokcache(void *tc)
{
    gw_tokcache_free(tc);
}

void gw_server_stop(gw_server_t *srv)
{
    int i;

    if (srv == NULL)
        return;
    atomic_store(&srv->stopping, 1);
    /* No MHD_quiesce_daemon(): in 0.9.75 with an epoll thread pool it races a worker that
     * is removing the listen socket from its epoll set itself and then calls MHD_PANIC
     * ("Failed to remove listen FD from epoll set", seen when SIGTERM follows the start
     * closely). Requests that arrive during the short drain below are ended at once
     * because `stopping` is set. */
    /* MHD_stop_daemon panics on suspended connections: resume everything first */
    for (i = 0; i < 500; i++) {
        gw_proxy_t *px;
        int suspended = 0;

        gw_admin_t *a;

        pthread_mutex_lock(&srv->mu);
        for (px = srv->proxies; px; px = px->next) {
            pthread_mutex_lock(&px->mu);
            px->shutdown = 1;
            if (px->suspended && px->conn)
                suspended++;
            wake(px);
            pthread_mutex_unlock(&px->mu);
        }
        for (a = srv->admins; a; a = a->next) {
            pthread_mutex_lock(&a->mu);
            a->shutdown = 1;
            if (a->suspended && a->conn) {
                suspended++;
                a->suspended = 0;
                MHD_resume_connection(a->conn);
            }
            pthread_mutex_unlock(&a->mu);
        }
        pthread_mutex_unlock(&srv->mu);
        if (suspended == 0 && i > 0)
            break;
        usleep(10000);
    }
    MHD_stop_daemon(srv->mhd);
    gw_guard_free(srv->guard);
    /* after the CANCELs posted by MHD_stop_daemon, on the thread that owns it */
    gw_upstream_call(srv->up, &srv->free_cmd, free_tokcache, srv->tokcache);
    for (i = 0; i < (int)srv->n_up; i++)
        gw_upstream_free(srv->ups[i]);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}
