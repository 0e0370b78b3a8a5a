/*
 * relay.c - the relay between one client request and its backend transfer (gw_proxy_t).
 *
 * The upstream-thread side (curl callbacks, the decision on status and mode, SSE
 * decoding and rewriting, backpressure, deadlines, the end of the transfer), the
 * MHD-side content reader and the response queued after the decision, and the start of
 * a relay (with the supervisor's lease for spawned backends). Threads and ownership:
 * server.c's header comment and gw_proxy_t in internal.h.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/jspan.h"
#include "core/log.h"
#include "core/text.h"
#include "http/internal.h"
#include "openai/rewrite.h"

/* ================================================================ proxy ====== */

void gw__proxy_unref(gw_proxy_t *px)
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
void gw__proxy_wake(gw_proxy_t *px)
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
    gw__proxy_wake(px);
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
    gw__proxy_wake(px);
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
    gw_upstream_connected(px->up, &px->x);
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
        if (gw__ieq(name, "Content-Type") && vl >= 17 && strncasecmp(v, "text/event-stream", 17) == 0)
            px->hdr_is_sse = 1;
        if (gw__drop_response_header(name))
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
        int is_error;

        if (gw_buf_add(st, "data: ", 6) != GW_OK ||
            gw_oai_rewrite(ev->data, ev->data_len, px->rewrite_model ? px->model_name : NULL,
                           px->model_len, st, &is_error) < 0)
            return 1;
        if (is_error)
            px->saw_error_event = 1;
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
        gw__proxy_wake(px);
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
            gw__proxy_wake(px);
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
        gw__proxy_wake(px);
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
        b = gw__error_body(msg, px->status >= 500 ? "server_error" : "invalid_request_error", NULL,
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
        b = gw__error_body(msg, "server_error", NULL,
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
        b = gw__error_body(msg, "server_error", NULL, code);
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
    gw__proxy_wake(px);
    pthread_mutex_unlock(&px->mu);
    gw_buf_reset(&px->stage);
}

static void xfer_on_hup(gw_xfer_t *x)
{
    gw_proxy_t *px = GW_CONTAINER_OF(x, gw_proxy_t, x);

    pthread_mutex_lock(&px->mu);
    px->client_gone = 1;
    gw__proxy_wake(px);
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
    gw__proxy_unref(px);
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
    gw__proxy_unref(cls);
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

        if (gw__ieq(p, want))
            return 1;
        p = value + strlen(value) + 1;
    }
    return 0;
}

/* The handler runs again after the upstream thread resumed us with a decision. */
enum MHD_Result gw__proxy_respond(gw_req_t *r, struct MHD_Connection *c)
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
        return gw__queue_error(r, c, px->fail, px->fail_param[0] ? px->fail_param : NULL, "%s",
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
    gw__add_common_headers(r, resp, px->mode == M_BUFFER);
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
    if (gw__drop_request_header(key))
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
    px->x.connect_deadline_ms = gw_now_ms() + px->srv->conf->connect_timeout_ms;
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
        char *b = gw__error_body(msg, gw_err_type(rc), NULL, gw_err_code(rc));

        gw_buf_addf(&px->out, "data: %s\n\n", b);
        free(b);
        px->up_done = 1;
        gw__proxy_wake(px);
    } else {
        set_fail(px, rc, "%s", msg);
        px->decided = 1;
        px->up_done = 1;
        gw__proxy_wake(px);
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
        gw__proxy_wake(px);
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
    gw__add_common_headers(r, resp, 0);
    r->status = 200;
    rc = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Creates the relay for a request and posts it upstream. Takes ownership of nothing. */
enum MHD_Result gw__proxy_start(gw_req_t *r, struct MHD_Connection *c, gw_model_t *m,
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
    /* post first: the watch's epoll_ctl then overlaps the upstream thread's wake-up. The
     * client fd stays open meanwhile: this worker is the one that would close it, and it
     * is still in this handler */
    if (rc == GW_OK && !px->wait.queued)
        proxy_post(px);
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci && rc == GW_OK)
        gw_upstream_watch(px->up, &px->x, ci->connect_fd);
    if (atomic_load(&srv->stopping)) {
        px->shutdown = 1;
        gw__proxy_wake(px);
    }
    pthread_mutex_unlock(&px->mu);
    if (rc != GW_OK) {
        r->phase = PH_DONE; /* on_completed still cancels the (never started) transfer */
        return gw__queue_error(r, c, rc, NULL, "%s", err.msg);
    }
    if (px->wait.queued)
        GW_LOG(GW_LOG_DEBUG, "req=%s waits for model %s to start%s", r->id, m->conf->name,
               px->committed ? " (stream committed)" : "");
    if (px->committed) {
        r->phase = PH_DONE;
        return commit_stream(r, c, px);
    }
    return MHD_YES;
}

/* 403: the request's key may not use this model (named as the client named it). */
