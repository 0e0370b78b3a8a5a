/*
 * server.c - front HTTP server: MHD daemon, routing, request contexts, local handlers.
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
 * Shared types live in http/internal.h; the relay (gw_proxy_t) is in http/relay.c and
 * the token-ID prelude in http/tokpath.c.
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

int gw__ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

/* Hop-by-hop and gateway-owned request headers that never reach the backend. */
int gw__drop_request_header(const char *name)
{
    static const char *const names[] = {
        "Host", "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length", "Expect",
        "Authorization", "X-Api-Key", "Accept-Encoding", NULL};
    int i;

    for (i = 0; names[i]; i++)
        if (gw__ieq(name, names[i]))
            return 1;
    return 0;
}

/* Hop-by-hop and gateway-owned response headers that never reach the client. */
int gw__drop_response_header(const char *name)
{
    static const char *const names[] = {
        "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Content-Length", "Date", NULL};
    int i;

    for (i = 0; names[i]; i++)
        if (gw__ieq(name, names[i]))
            return 1;
    return strncasecmp(name, "Access-Control-", 15) == 0;
}

/* Builds an OpenAI error body. */
char *gw__error_body(const char *message, const char *type, const char *param,
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
void gw__add_common_headers(gw_req_t *r, struct MHD_Response *resp, int complete)
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
    gw__add_common_headers(r, resp, 1);
    r->status = status;
    rc = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

enum MHD_Result gw__queue_error(gw_req_t *r, struct MHD_Connection *c, gw_err_t e,
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
    body = gw__error_body(msg, gw_err_type(e), param, gw_err_code(e));
    resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    gw__add_common_headers(r, resp, 1);
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

static enum MHD_Result deny_model(gw_req_t *r, struct MHD_Connection *c, const char *name,
                                  size_t len)
{
    return gw__queue_error(r, c, GW_EFORBIDDEN, "model",
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
    return gw__queue_error(r, c, GW_EJSONDEPTH, NULL,
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
        return gw__queue_error(r, c, a->rc, NULL, "%s", a->msg);
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
        return gw__queue_error(r, c, GW_ENOROUTE, NULL, "no route for POST %.*s", (int)r->path_len,
                           r->uri);
    if ((size_t)(end - slash) == 4 && memcmp(slash, "load", 4) == 0)
        unload = 0;
    else if ((size_t)(end - slash) == 6 && memcmp(slash, "unload", 6) == 0)
        unload = 1;
    else
        return gw__queue_error(r, c, GW_ENOROUTE, NULL,
                           "no route for POST %.*s (expected .../load or .../unload)",
                           (int)r->path_len, r->uri);
    snprintf(r->model, sizeof(r->model), "%.*s", (int)(slash - 1 - p), p);
    m = gw_registry_find(srv->reg, p, (size_t)(slash - 1 - p));
    if (m == NULL)
        return gw__queue_error(r, c, GW_ENOMODEL, "model", "The model '%s' does not exist",
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
        return gw__queue_error(r, c, rc, "model", "%s", err.msg);
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
        return gw__queue_error(r, c, GW_ENOMODEL, "model", "The model '%.*s' does not exist",
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

/*
 * POST /v1/... routed by `model`. The fast path (gw_oai_check) validates the bytes and
 * reads `model` and `stream` without a tree; bodies it declines (errors, token-ID
 * fields, escaped model names) take the jansson path, which words every error.
 */
static enum MHD_Result h_oai(gw_req_t *r, struct MHD_Connection *c, const char *method)
{
    gw_oai_kind_t kind = (gw_oai_kind_t)r->route->oai_kind;
    gw_errbuf_t err;
    gw_oai_fast_t fast;
    json_t *root = NULL;
    gw_err_t e;
    gw_model_t *m;
    const char *name;
    size_t name_len;
    int stream;

    /* one pass over the body when it is fine; the depth guard runs before jansson only */
    if (gw_oai_check(r->body.ptr, r->body.len, kind, r->srv->conf->max_json_depth, &fast)) {
        name = fast.model; /* a view into r->body, not NUL-terminated */
        name_len = fast.model_len;
        stream = fast.stream;
    } else {
        json_t *model;

        if (body_too_deep(r))
            return queue_too_deep(r, c);
        e = gw_oai_parse(r->body.ptr, r->body.len, kind, &root, &err);
        if (e != GW_OK)
            return gw__queue_error(r, c, e, err.param, "%s", err.msg);
        model = json_object_get(root, "model");
        name = json_string_value(model);
        name_len = json_string_length(model);
        stream = json_is_true(json_object_get(root, "stream"));
    }
    snprintf(r->model, sizeof(r->model), "%.*s", (int)name_len, name);
    m = gw_registry_find(r->srv->reg, name, name_len);
    if (m == NULL) {
        enum MHD_Result rc = gw__queue_error(r, c, GW_ENOMODEL, "model",
                                         "The model '%s' does not exist or is not configured",
                                         r->model);
        json_decref(root);
        return rc;
    }
    if (memchr(name, '\0', name_len) != NULL || name_len >= sizeof(r->model)) {
        json_decref(root);
        return gw__queue_error(r, c, GW_EPARAM, "model", "'model' is not a valid model name");
    }
    if (!gw_guard_allows(&r->sec, m)) {
        json_decref(root);
        return deny_model(r, c, r->model, strlen(r->model));
    }
    r->stream = stream;
    if (root != NULL && (kind == GW_OAI_CHAT || kind == GW_OAI_COMPLETIONS)) {
        gw_tok_req_t tr;
        int t = gw_tok_req_detect(root, kind == GW_OAI_CHAT, r->srv->conf->max_stop_token_ids,
                                  &tr, &err);

        if (t < 0) {
            json_decref(root);
            return gw__queue_error(r, c, GW_EPARAM, err.param, "%s", err.msg);
        }
        if (t == 1)
            return gw__proxy_start(r, c, m, r->uri, r->path_len, 1, method, root, &tr);
    }
    json_decref(root);
    return gw__proxy_start(r, c, m, r->uri, r->path_len, 1, method, NULL, NULL);
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
        return gw__queue_error(r, c, GW_ENOMODEL, "model", "The model '%.*s' does not exist",
                           (int)name_len, p);
    if (!gw_guard_allows(&r->sec, m))
        return deny_model(r, c, p, name_len);
    if (slash && gw_guard_dot_segment(slash, (size_t)(end - slash)))
        return gw__queue_error(r, c, GW_EBADREQ, NULL,
                           "the path after /upstream/%.*s must not contain '.' or '..' segments",
                           (int)name_len, p);
    if (r->body.len > 0 && (r->body.ptr[strspn(r->body.ptr, " \t\r\n")] == '{' ||
                            r->body.ptr[strspn(r->body.ptr, " \t\r\n")] == '[') &&
        body_too_deep(r))
        return queue_too_deep(r, c);
    if (slash == NULL)
        return gw__proxy_start(r, c, m, "/", 1, 0, method, NULL, NULL);
    return gw__proxy_start(r, c, m, slash, (size_t)(end - slash), 0, method, NULL, NULL);
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
        return gw__queue_error(r, c, r->sec.early, NULL, "%s", r->sec.msg);
    if (r->too_big)
        return gw__queue_error(r, c, GW_ETOOBIG, NULL,
                           "request body exceeds the limit of %zu bytes", conf->max_body_bytes);
    if (r->route == NULL) {
        if (r->wrong_method)
            return gw__queue_error(r, c, GW_EMETHOD, NULL, "method %s is not allowed on %.*s",
                               method, (int)r->path_len, r->uri);
        return gw__queue_error(r, c, GW_ENOROUTE, NULL, "no route for %s %.*s", method,
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
        return gw__queue_error(r, c, GW_ENOROUTE, NULL, "no route");
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
            return gw__queue_error(r, c, r->sec.early, NULL, "%s", r->sec.msg);
        }
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > srv->conf->max_body_bytes) {
            r->phase = PH_DONE;
            return gw__queue_error(r, c, GW_ETOOBIG, NULL,
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
        return gw__proxy_respond(r, c);
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
        gw__proxy_unref(px);
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
            gw__proxy_wake(px);
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
