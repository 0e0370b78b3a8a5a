/*
 * fake_llama.c - fake-llama, the stand-in llama-server used by the gateway's tests and
 * demo: command line, the libmicrohttpd server, every route, and the response shapes
 * (chat / completions / native, stream and non-stream) of llama-server build b10587
 * ("new", the default) or b4748 (--build old).
 *
 * Threads: MHD runs one thread per connection, so handlers and stream readers may block;
 * every wait goes through fl_wait_watch() (slots.h) so a client disconnect is noticed
 * promptly and recorded in the request log (reqlog.h). The main thread only handles
 * loading, the crash timer and signals. The vocabulary and generation rules live in
 * vocab.c and gen.c; README.md documents the behaviour for test writers.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "gen.h"
#include "jsonw.h"
#include "nlerr.h"
#include "reqlog.h"
#include "slots.h"
#include "util.h"
#include "vocab.h"

#define FL_MAX_BODY      (64u * 1024 * 1024)
#define FL_MAX_CHOICES   16
#define FL_FP_NEW        "b10587-3f545becc"
#define FL_FP_OLD        "b4748-c392e509"

/* ================================================================ options and state */

static struct {
    const char *host;
    int port;
    const char *port_file;
    const char *alias;
    const char *model;
    int load_ms;
    int fail_load;
    int ignore_sigterm;     /* --ignore-sigterm: emulate b10587's SIGTERM hang */
    int crash_after_ms;   /* -1 = never */
    int crash_on_request;
    int old;              /* --build old */
    int n_ctx;
    int parallel;
    int token_ms;
    int n_predict;        /* default max_tokens */
    const char *api_key;
    int quiet;
    int dump_vocab;
} opt = {
    .host = "127.0.0.1",
    .model = "models/fake-llama.gguf",
    .crash_after_ms = -1,
    .n_ctx = 4096,
    .parallel = 2,
    .n_predict = 16,
};

static volatile int g_ready;
static int g_shutdown_pipe[2] = { -1, -1 };
static json_t *g_gen_settings; /* template of generation_settings */

static const char *server_model(void)
{
    return opt.alias ? opt.alias : opt.model;
}

static const char *fingerprint(void)
{
    return opt.old ? FL_FP_OLD : FL_FP_NEW;
}

/* ================================================================ requests */

typedef struct fl_req {
    struct MHD_Connection *conn;
    fl_rec_t *rec;          /* NULL for /__fake/ requests */
    char *method;
    char *path;
    fl_buf_t body;
    int too_big;
    int dispatched;
    int fd;
    char *origin;
    char *auth;
    char *x_api_key;
    int is_fake;
} fl_req_t;

static void req_free(fl_req_t *r)
{
    if (!r)
        return;
    fl_rec_unref(r->rec);
    free(r->method);
    free(r->path);
    fl_buf_free(&r->body);
    free(r->origin);
    free(r->auth);
    free(r->x_api_key);
    free(r);
}

/* An error to report: HTTP status, OpenAI-style type and message. */
typedef struct fl_err {
    int status;
    const char *type;
    char msg[1024];
} fl_err_t;

static void set_err(fl_err_t *e, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_err(fl_err_t *e, int status, const char *type, const char *fmt, ...)
{
    va_list ap;

    e->status = status;
    e->type = type;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
}

static const char *type_for_status(int status)
{
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 501: return "not_supported_error";
    case 503: return "unavailable_error";
    default: return "server_error";
    }
}

/* ================================================================ responses */

static void add_common_headers(struct MHD_Response *resp, fl_req_t *r, const char *ctype,
                               int status, int sse)
{
    /* MHD refuses empty header values; a lone space reads as the empty value the real
     * server sends (header parsers strip the surrounding whitespace). */
    const char *origin = r->origin && r->origin[0] ? r->origin : " ";

    if (opt.old && sse) {
        MHD_add_response_header(resp, "Keep-Alive", "timeout=5, max=100");
        MHD_add_response_header(resp, "Content-Type", ctype);
        MHD_add_response_header(resp, "Server", "llama.cpp");
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
        return;
    }
    MHD_add_response_header(resp, "Server", "llama.cpp");
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    if (sse)
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    MHD_add_response_header(resp, "Content-Type", ctype);
    if (status >= 400 && !opt.old)
        MHD_add_response_header(resp, "Connection", "close");
    else
        MHD_add_response_header(resp, "Keep-Alive", "timeout=5, max=100");
}

/* A body written in pieces of `piece` bytes with `ms` between them (fake_fault trickle). */
typedef struct trickle_body {
    char *p;
    size_t n;
    size_t piece;
    int ms;
    int fd;
} trickle_body_t;

static ssize_t trickle_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    trickle_body_t *t = cls;

    if (pos >= t->n)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (pos > 0 && fl_wait_watch(t->fd, t->ms) != FL_WAIT_OK)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = t->n - pos;
    if (n > max)
        n = max;
    if (n > t->piece)
        n = t->piece;
    memcpy(buf, t->p + pos, n);
    return (ssize_t)n;
}

static void trickle_free(void *cls)
{
    trickle_body_t *t = cls;

    free(t->p);
    free(t);
}

/* Queues a complete body (stolen). piece > 0 writes it in pieces of that size. */
static enum MHD_Result respond_raw(fl_req_t *r, int status, const char *ctype, char *body,
                                   size_t len, size_t piece, int piece_ms)
{
    struct MHD_Response *resp;

    if (piece > 0) {
        trickle_body_t *t = fl_xcalloc(1, sizeof(*t));
        t->p = body;
        t->n = len;
        t->piece = piece;
        t->ms = piece_ms;
        t->fd = r->fd;
        resp = MHD_create_response_from_callback(len, 4096, trickle_reader, t, trickle_free);
    } else {
        resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    }
    add_common_headers(resp, r, ctype, status, 0);
    if (r->rec) {
        fl_rec_set_status(r->rec, status);
        if (status >= 400)
            fl_rec_finish(r->rec, FL_OUT_ERROR);
    }
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned int)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Queues a JSON body (v is stolen). */
static enum MHD_Result respond_json_ex(fl_req_t *r, int status, json_t *v, size_t piece,
                                       int piece_ms)
{
    size_t len;
    char *s = fl_json_dumps(v, &len);

    json_decref(v);
    return respond_raw(r, status, "application/json; charset=utf-8", s, len, piece, piece_ms);
}

static enum MHD_Result respond_json(fl_req_t *r, int status, json_t *v)
{
    return respond_json_ex(r, status, v, 0, 0);
}

/*
 * llama-server error body. format_error_response() gives {code,message,type}; the HTTP
 * middlewares (401, 404, 503) of the new build write {message,type,code}.
 */
static json_t *error_body(int status, const char *type, const char *msg)
{
    json_t *e = json_object();
    json_t *o = json_object();
    int mtc = !opt.old && (status == 401 || status == 404 || status == 503);

    if (!mtc)
        json_object_set_new(e, "code", json_integer(status));
    json_object_set_new(e, "message", fl_json_bytes(msg, strlen(msg)));
    json_object_set_new(e, "type", json_string(type));
    if (mtc)
        json_object_set_new(e, "code", json_integer(status));
    json_object_set_new(o, "error", e);
    return o;
}

static enum MHD_Result respond_error(fl_req_t *r, int status, const char *type, const char *msg)
{
    return respond_json(r, status, error_body(status, type, msg));
}

static enum MHD_Result respond_err(fl_req_t *r, const fl_err_t *e)
{
    return respond_error(r, e->status, e->type, e->msg);
}

/* ================================================================ JSON request helpers */

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

/* Parses the body like nlohmann::json::parse (errors become 500 server_error). */
static json_t *parse_body(fl_req_t *r, fl_err_t *e)
{
    const char *p = r->body.p ? r->body.p : "";
    size_t n = r->body.n;
    json_error_t je;

    json_t *v = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v) {
        if (!fl_nlohmann_error(p, n, e->msg, sizeof(e->msg)))
            snprintf(e->msg, sizeof(e->msg),
                     "[json.exception.parse_error.101] parse error at line %d, column %d: "
                     "syntax error while parsing value - %s",
                     je.line, je.column + 1, je.text);
        e->status = 500;
        e->type = "server_error";
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        set_err(e, 500, "server_error",
                "[json.exception.type_error.306] cannot use value() with %s",
                json_type_name(v));
        return NULL;
    }
    return v;
}

static int get_bool(json_t *body, const char *key, int def)
{
    json_t *v = json_object_get(body, key);

    if (!v || json_is_null(v))
        return def;
    if (json_is_boolean(v))
        return json_is_true(v);
    if (json_is_integer(v))
        return json_integer_value(v) != 0;
    return def;
}

/* Reads an integer field of the schema; a non-number is a 400 in the new build. */
static int get_int_field(json_t *body, const char *key, long long *out, fl_err_t *e)
{
    json_t *v = json_object_get(body, key);

    if (!v || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 1;
    }
    if (json_is_real(v)) {
        *out = (long long)json_real_value(v);
        return 1;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 1;
    }
    if (!opt.old)
        set_err(e, 400, "invalid_request_error",
                "Field '%s': [json.exception.type_error.302] type must be number, but is %s", key,
                json_type_name(v));
    return opt.old ? 0 : -1;
}

/* ================================================================ chat template */

/* Appends a message's content (string, or an array of {"type":"text","text":...}). */
static void add_content(fl_buf_t *out, json_t *content)
{
    if (json_is_string(content)) {
        fl_buf_add(out, json_string_value(content), json_string_length(content));
    } else if (json_is_array(content)) {
        size_t i;
        json_t *part;
        json_array_foreach(content, i, part) {
            json_t *t = json_object_get(part, "text");
            if (json_is_string(t))
                fl_buf_add(out, json_string_value(t), json_string_length(t));
            else if (json_is_string(part))
                fl_buf_add(out, json_string_value(part), json_string_length(part));
        }
    }
}

/*
 * The phi-3 style template (documented in README.md), without the leading <s>, which the
 * prompt tokenization adds as BOS:
 *   system:    <|system|>\n{content}<|end|>\n
 *   user:      <|user|>\n{content}<|end|>\n<|assistant|>\n
 *   assistant: {content}<|end|>\n
 * Messages with any other role are dropped (as the real phi-3 template does).
 */
static int apply_template(json_t *body, fl_buf_t *out, size_t *n_msgs, fl_err_t *e)
{
    json_t *msgs = json_object_get(body, "messages");
    size_t i;
    json_t *m;

    if (!msgs) {
        set_err(e, opt.old ? 500 : 400, opt.old ? "server_error" : "invalid_request_error",
                "'messages' is required");
        return -1;
    }
    if (!json_is_array(msgs)) {
        set_err(e, opt.old ? 500 : 400, opt.old ? "server_error" : "invalid_request_error",
                "Expected 'messages' to be an array");
        return -1;
    }
    json_array_foreach(msgs, i, m) {
        if (!json_is_object(m)) {
            set_err(e, 500, "server_error",
                    "[json.exception.type_error.306] cannot use value() with %s",
                    json_type_name(m));
            return -1;
        }
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content");
        if (!role)
            role = "";
        if (strcmp(role, "system") == 0) {
            fl_buf_adds(out, "<|system|>\n");
            add_content(out, content);
            fl_buf_adds(out, "<|end|>\n");
        } else if (strcmp(role, "user") == 0) {
            fl_buf_adds(out, "<|user|>\n");
            add_content(out, content);
            fl_buf_adds(out, "<|end|>\n<|assistant|>\n");
        } else if (strcmp(role, "assistant") == 0) {
            add_content(out, content);
            fl_buf_adds(out, "<|end|>\n");
        }
    }
    *n_msgs = json_array_size(msgs);
    if (!out->p)
        fl_buf_adds(out, "");
    return 0;
}

/* ================================================================ generation jobs */

typedef enum { EP_CHAT, EP_CMPL, EP_NATIVE } fl_ep_t;

enum { PH_RUN, PH_FINAL, PH_END };

typedef struct fl_fault {
    int delay_headers_ms;
    int stall_after;
    int stall_ms;
    int die_after;
    int error_after;
    int trickle_bytes;
    int trickle_ms;
    int status;
    char *message;
} fl_fault_t;

typedef struct fl_job {
    fl_ep_t ep;
    int stream;
    int n_choices;
    fl_gen_t gens[FL_MAX_CHOICES];
    int finish_sent[FL_MAX_CHOICES];
    fl_toks_t prompt;
    char *prompt_text;
    char *model;
    char id[48];
    long long created;
    int include_usage;
    int timings_per_token; /* every chunk carries timings (predicted_n so far) */
    int spec_every;        /* fake_spec_every: emulate speculative decoding, where only
                            * every Nth token's stream chunk carries its logprobs item */
    int verbose;
    int return_tokens;
    int n_probs;
    int token_ms;
    double temperature;
    int n_predict;
    fl_fault_t fault;
    char **stops;
    size_t *stop_lens;
    size_t n_stops;
    fl_toks_t script;
    int scripted;
    int slot_ids[FL_MAX_CHOICES]; /* valid once acquired, also after release */
    int n_slots;                   /* slots still held */
    int acquired;
    fl_rec_t *rec;
    int fd;
    char *origin;
    long long t_gen_start_us;
    long tokens_total;
    /* stream state */
    fl_buf_t pending;
    size_t pending_off;
    int pieces_written;
    int phase;
    int rr;
    int stalled;
    int end_error;
} fl_job_t;

static void job_release_slots(fl_job_t *j)
{
    if (j->n_slots) {
        fl_slots_release(j->slot_ids, j->n_slots);
        j->n_slots = 0;
    }
}

static void job_free(fl_job_t *j)
{
    if (!j)
        return;
    job_release_slots(j);
    for (int i = 0; i < j->n_choices; i++)
        fl_gen_free(&j->gens[i]);
    fl_toks_free(&j->prompt);
    free(j->prompt_text);
    free(j->model);
    for (size_t i = 0; i < j->n_stops; i++)
        free(j->stops[i]);
    free(j->stops);
    free(j->stop_lens);
    fl_toks_free(&j->script);
    free(j->fault.message);
    fl_rec_unref(j->rec);
    free(j->origin);
    fl_buf_free(&j->pending);
    free(j);
}

static void make_id(char *out, size_t size)
{
    static const char alnum[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[32];

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t s = (uint64_t)fl_now_us();
        for (size_t i = 0; i < sizeof(rnd); i++)
            rnd[i] = (unsigned char)fl_rng_next(&s);
    }
    size_t k = (size_t)snprintf(out, size, "chatcmpl-");
    for (size_t i = 0; i < sizeof(rnd) && k + 1 < size; i++)
        out[k++] = alnum[rnd[i] % (sizeof(alnum) - 1)];
    out[k] = '\0';
}

static double round3(double v)
{
    return round(v * 1000.0) / 1000.0;
}

static json_t *timings_json(const fl_job_t *j, const fl_gen_t *g)
{
    json_t *t = json_object();
    int pn = (int)j->prompt.n;
    double pms = round3(0.2 + 0.01 * pn);
    double gms = round3((double)(fl_now_us() - j->t_gen_start_us) / 1000.0);
    int gn = g->n_decoded;

    if (gms <= 0.0)
        gms = 0.001;
    if (!opt.old)
        json_object_set_new(t, "cache_n", json_integer(0));
    json_object_set_new(t, "prompt_n", json_integer(pn));
    json_object_set_new(t, "prompt_ms", json_real(pms));
    json_object_set_new(t, "prompt_per_token_ms", json_real(pn ? pms / pn : 0.0));
    json_object_set_new(t, "prompt_per_second", json_real(pn ? 1e3 / pms * pn : 0.0));
    json_object_set_new(t, "predicted_n", json_integer(gn));
    json_object_set_new(t, "predicted_ms", json_real(gms));
    json_object_set_new(t, "predicted_per_token_ms", json_real(gn ? gms / gn : 0.0));
    json_object_set_new(t, "predicted_per_second", json_real(gn ? 1e3 / gms * gn : 0.0));
    return t;
}

static json_t *usage_json(const fl_job_t *j)
{
    json_t *u = json_object();
    long comp = 0;

    for (int i = 0; i < j->n_choices; i++)
        comp += j->gens[i].n_decoded;
    json_object_set_new(u, "completion_tokens", json_integer(comp));
    json_object_set_new(u, "prompt_tokens", json_integer((json_int_t)j->prompt.n));
    json_object_set_new(u, "total_tokens", json_integer(comp + (json_int_t)j->prompt.n));
    if (!opt.old) {
        json_t *d = json_object();
        json_object_set_new(d, "cached_tokens", json_integer(0));
        json_object_set_new(u, "prompt_tokens_details", d);
    }
    return u;
}

static const char *finish_reason(const fl_gen_t *g)
{
    return (g->stop == FL_STOP_EOS || g->stop == FL_STOP_WORD) ? "stop" : "length";
}

static json_t *gen_settings_json(const fl_job_t *j)
{
    json_t *s = json_deep_copy(g_gen_settings);
    json_t *stops = json_array();

    for (size_t i = 0; i < j->n_stops; i++)
        json_array_append_new(stops, fl_json_bytes(j->stops[i], j->stop_lens[i]));
    json_object_set_new(s, "temperature", fl_json_f32((float)j->temperature));
    json_object_set_new(s, "stop", stops);
    json_object_set_new(s, "max_tokens", json_integer(j->n_predict));
    json_object_set_new(s, "n_predict", json_integer(j->n_predict));
    json_object_set_new(s, "stream", json_boolean(j->stream));
    json_object_set_new(s, "n_probs", json_integer(j->n_probs));
    json_object_set_new(s, "chat_format",
                        json_string(j->ep == EP_CHAT ? "peg-native" : "Content-only"));
    return s;
}

/* The native result object (also __verbose): stream_final gives the stream's last chunk. */
static json_t *native_final(const fl_job_t *j, int ci, int stream_final)
{
    const fl_gen_t *g = &j->gens[ci];
    json_t *o = json_object();
    json_t *toks = json_array();

    if (!stream_final && j->return_tokens)
        for (size_t i = 0; i < g->tokens.n; i++)
            json_array_append_new(toks, json_integer(g->tokens.v[i]));
    json_object_set_new(o, "index", json_integer(ci));
    json_object_set_new(o, "content",
                        stream_final ? json_string("") : fl_json_bytes(g->text.p ? g->text.p : "",
                                                                         g->text.n));
    json_object_set_new(o, "tokens", toks);
    json_object_set_new(o, "id_slot", json_integer(j->acquired ? j->slot_ids[ci] : 0));
    json_object_set_new(o, "stop", json_true());
    json_object_set_new(o, "model", json_string(server_model()));
    json_object_set_new(o, "tokens_predicted", json_integer(g->n_decoded));
    json_object_set_new(o, "tokens_evaluated", json_integer((json_int_t)j->prompt.n));
    json_object_set_new(o, "generation_settings", gen_settings_json(j));
    json_object_set_new(o, "prompt", fl_json_bytes(j->prompt_text, strlen(j->prompt_text)));
    json_object_set_new(o, "has_new_line",
                        json_boolean(g->text.n && memchr(g->text.p, '\n', g->text.n)));
    json_object_set_new(o, "truncated", json_boolean(g->truncated));
    json_object_set_new(o, "stop_type", json_string(fl_stop_type_str(g->stop)));
    json_object_set_new(o, "stopping_word",
                        g->stop == FL_STOP_WORD
                            ? fl_json_bytes(j->stops[g->stop_word], j->stop_lens[g->stop_word])
                            : json_string(""));
    json_object_set_new(o, "tokens_cached",
                        json_integer((json_int_t)j->prompt.n + g->n_decoded -
                                     (g->n_decoded > 0 ? 1 : 0)));
    json_object_set_new(o, "timings", timings_json(j, g));
    if (!stream_final && j->n_probs > 0) {
        json_t *probs = json_array();
        size_t n = fl_gen_items_final(g);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(probs, fl_item_json(&g->items[i]));
        json_object_set_new(o, "completion_probabilities", probs);
    }
    return o;
}

static json_t *item_wrap(const fl_item_t *it)
{
    json_t *lp = json_object();
    json_t *arr = json_array();

    json_array_append_new(arr, fl_item_json(it));
    json_object_set_new(lp, "content", arr);
    return lp;
}

/* ---------------------------------------------------------------- stream events */

/* Appends "data: <json>\n\n" (o is stolen). */
static void emit(fl_job_t *j, json_t *o)
{
    json_t *choices = json_object_get(o, "choices");

    /* timings_per_token: every OAI chunk gets the timings so far (llama-server) */
    if (j->timings_per_token && j->ep != EP_NATIVE && choices &&
        !json_object_get(o, "timings")) {
        json_int_t ci = json_integer_value(json_object_get(json_array_get(choices, 0), "index"));

        if (ci < 0 || ci >= FL_MAX_CHOICES)
            ci = 0;
        json_object_set_new(o, "timings", timings_json(j, &j->gens[ci]));
    }
    fl_buf_adds(&j->pending, "data: ");
    fl_json_write(&j->pending, o);
    fl_buf_adds(&j->pending, "\n\n");
    json_decref(o);
}

static json_t *chat_chunk(const fl_job_t *j, json_t *choices)
{
    json_t *o = json_object();

    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "created", json_integer(j->created));
    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "model", json_string(j->model));
    json_object_set_new(o, "system_fingerprint", json_string(fingerprint()));
    json_object_set_new(o, "object", json_string("chat.completion.chunk"));
    return o;
}

static json_t *chat_choice(int index, const char *finish, json_t *delta, json_t *logprobs)
{
    json_t *c = json_object();
    json_t *arr = json_array();

    json_object_set_new(c, "finish_reason", finish ? json_string(finish) : json_null());
    json_object_set_new(c, "index", json_integer(index));
    json_object_set_new(c, "delta", delta);
    if (logprobs)
        json_object_set_new(c, "logprobs", logprobs);
    json_array_append_new(arr, c);
    return arr;
}

static json_t *cmpl_chunk(const fl_job_t *j, int index, const char *text, size_t len,
                          json_t *logprobs, const char *finish)
{
    json_t *o = json_object();
    json_t *c = json_object();
    json_t *arr = json_array();

    json_object_set_new(c, "text", fl_json_bytes(text, len));
    json_object_set_new(c, "index", json_integer(index));
    json_object_set_new(c, "logprobs", logprobs ? logprobs : json_null());
    json_object_set_new(c, "finish_reason", finish ? json_string(finish) : json_null());
    json_array_append_new(arr, c);
    json_object_set_new(o, "choices", arr);
    json_object_set_new(o, "created", json_integer(j->created));
    json_object_set_new(o, "model", json_string(j->model));
    json_object_set_new(o, "system_fingerprint", json_string(fingerprint()));
    json_object_set_new(o, "object", json_string("text_completion"));
    return o;
}

static const char *parse_format(const fl_job_t *j)
{
    return j->ep == EP_CHAT ? "peg-native" : "Content-only";
}

static void emit_error_event(fl_job_t *j, const char *msg)
{
    emit(j, error_body(500, "server_error", msg));
}

/* The events of one processed token of choice ci. Returns -1 if the stream must end
 * with an error event (invalid UTF-8 in the new build). */
static int emit_token(fl_job_t *j, int ci, const fl_step_t *st)
{
    const fl_gen_t *g = &j->gens[ci];
    /* speculative decoding: draft-accepted tokens have no probabilities (llama-server) */
    int has_item = st->has_item && !(j->spec_every > 0 && g->n_decoded % j->spec_every != 0);

    if (st->incomplete)
        return 0;
    if (!opt.old && !fl_utf8_valid(g->text.p, g->text.n, 1)) {
        char msg[128];
        snprintf(msg, sizeof(msg),
                 "The model produced output that does not match the expected %s format",
                 parse_format(j));
        emit_error_event(j, msg);
        return -1;
    }
    switch (j->ep) {
    case EP_CHAT:
        if (opt.old) {
            json_t *delta = json_object();
            json_object_set_new(delta, "content", fl_json_bytes(st->send.p ? st->send.p : "",
                                                                st->send.n));
            emit(j, chat_chunk(j, chat_choice(ci, NULL, delta,
                                              has_item ? item_wrap(st->item) : NULL)));
            break;
        }
        if (g->n_decoded == 1) {
            json_t *delta = json_object();
            json_object_set_new(delta, "role", json_string("assistant"));
            json_object_set_new(delta, "content", json_null());
            emit(j, chat_chunk(j, chat_choice(ci, NULL, delta, NULL)));
        }
        if (st->send.n > 0) {
            json_t *delta = json_object();
            json_object_set_new(delta, "content", fl_json_bytes(st->send.p, st->send.n));
            json_t *o = chat_chunk(j, chat_choice(ci, NULL, delta,
                                                  has_item ? item_wrap(st->item) : NULL));
            if (st->stop_now)
                json_object_set_new(o, "timings", timings_json(j, g));
            emit(j, o);
        }
        break;
    case EP_CMPL: {
        json_t *o = cmpl_chunk(j, ci, st->send.p ? st->send.p : "", st->send.n,
                               has_item ? item_wrap(st->item) : NULL, NULL);
        json_object_set_new(o, "id", json_string(j->id));
        if (st->stop_now)
            json_object_set_new(o, "timings", timings_json(j, g));
        emit(j, o);
        break;
    }
    case EP_NATIVE: {
        json_t *o = json_object();
        json_t *toks = json_array();
        json_array_append_new(toks, json_integer(st->id));
        json_object_set_new(o, "index", json_integer(ci));
        json_object_set_new(o, "content", fl_json_bytes(st->send.p ? st->send.p : "",
                                                        st->send.n));
        json_object_set_new(o, "tokens", toks);
        json_object_set_new(o, "stop", json_false());
        json_object_set_new(o, "id_slot", json_integer(-1));
        json_object_set_new(o, "tokens_predicted", json_integer(g->n_decoded));
        json_object_set_new(o, "tokens_evaluated", json_integer((json_int_t)j->prompt.n));
        if (st->stop_now)
            json_object_set_new(o, "timings", timings_json(j, g));
        if (st->has_item) {
            json_t *arr = json_array();
            json_array_append_new(arr, fl_item_json(st->item));
            json_object_set_new(o, "completion_probabilities", arr);
        }
        emit(j, o);
        break;
    }
    }
    return 0;
}

/* The finish event(s) of choice ci. */
static void emit_finish(fl_job_t *j, int ci)
{
    const fl_gen_t *g = &j->gens[ci];

    switch (j->ep) {
    case EP_CHAT: {
        json_t *o = chat_chunk(j, chat_choice(ci, finish_reason(g), json_object(), NULL));
        if (opt.old) {
            json_object_set_new(o, "usage", usage_json(j));
            json_object_set_new(o, "timings", timings_json(j, g));
        } else {
            if (!j->include_usage)
                json_object_set_new(o, "timings", timings_json(j, g));
            if (j->verbose)
                json_object_set_new(o, "__verbose", native_final(j, ci, 1));
        }
        emit(j, o);
        break;
    }
    case EP_CMPL: {
        json_t *o = cmpl_chunk(j, ci, "", 0, NULL, finish_reason(g));
        json_object_set_new(o, "usage", usage_json(j));
        json_object_set_new(o, "id", json_string(j->id));
        json_object_set_new(o, "timings", timings_json(j, g));
        emit(j, o);
        break;
    }
    case EP_NATIVE:
        emit(j, native_final(j, ci, 1));
        break;
    }
}

static void emit_end(fl_job_t *j)
{
    if (j->ep == EP_CHAT && !opt.old && j->include_usage) {
        json_t *o = chat_chunk(j, json_array());
        json_object_set_new(o, "usage", usage_json(j));
        json_object_set_new(o, "timings", timings_json(j, &j->gens[0]));
        emit(j, o);
    }
    if (j->ep != EP_NATIVE)
        fl_buf_adds(&j->pending, "data: [DONE]\n\n");
}

/* ---------------------------------------------------------------- the generation loop */

/* Records a wait that ended early; returns 1 if the job must stop. */
static int job_waited(fl_job_t *j, int w)
{
    if (w == FL_WAIT_OK)
        return 0;
    if (w == FL_WAIT_GONE && j->rec)
        fl_rec_finish(j->rec, FL_OUT_CANCELLED);
    return 1;
}

static char *fault_message(const fl_job_t *j, const char *what)
{
    char buf[256];

    if (j->fault.message)
        return fl_xstrdup(j->fault.message);
    snprintf(buf, sizeof(buf), "fake-llama: injected %s after %ld tokens", what,
             j->tokens_total);
    return fl_xstrdup(buf);
}

enum { ADV_OK, ADV_DONE, ADV_CANCEL, ADV_DIE, ADV_ERROR };

/*
 * One step of a job: checks the faults, waits, and processes one token of the next
 * unfinished choice (round robin), appending stream events when streaming.
 */
static int job_advance(fl_job_t *j)
{
    fl_fault_t *f = &j->fault;

    if (f->die_after >= 0 && j->tokens_total >= f->die_after)
        return ADV_DIE;
    if (f->error_after >= 0 && j->tokens_total >= f->error_after)
        return ADV_ERROR;
    if (f->stall_after >= 0 && !j->stalled && j->tokens_total >= f->stall_after) {
        j->stalled = 1;
        if (job_waited(j, fl_wait_watch(j->fd, f->stall_ms)))
            return ADV_CANCEL;
    }
    for (int k = 0; k < j->n_choices; k++) {
        if (!j->gens[k].has_next && !j->finish_sent[k]) {
            j->finish_sent[k] = 1;
            if (j->stream)
                emit_finish(j, k);
            return ADV_OK;
        }
    }
    int ci = -1;
    for (int k = 0; k < j->n_choices; k++) {
        int c = (j->rr + k) % j->n_choices;
        if (j->gens[c].has_next) {
            ci = c;
            break;
        }
    }
    if (ci < 0)
        return ADV_DONE;
    j->rr = ci + 1;
    if (job_waited(j, fl_wait_watch(j->fd, j->token_ms)))
        return ADV_CANCEL;

    fl_step_t st;
    fl_gen_step(&j->gens[ci], &st);
    j->tokens_total++;
    if (j->n_slots > ci)
        fl_slots_progress(j->slot_ids[ci], j->gens[ci].n_decoded);
    int rc = ADV_OK;
    if (j->stream) {
        if (emit_token(j, ci, &st) < 0)
            rc = ADV_ERROR + 100; /* error event already written */
        if (j->rec)
            fl_rec_add_tokens(j->rec, 1);
    }
    fl_step_clear(&st);
    return rc;
}

/* ---------------------------------------------------------------- stream reader */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    fl_job_t *j = cls;

    (void)pos;
    for (;;) {
        if (j->pending_off < j->pending.n) {
            if (j->fault.trickle_bytes > 0 && j->pieces_written > 0 &&
                job_waited(j, fl_wait_watch(j->fd, j->fault.trickle_ms))) {
                job_release_slots(j);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            size_t n = j->pending.n - j->pending_off;
            if (n > max)
                n = max;
            if (j->fault.trickle_bytes > 0 && n > (size_t)j->fault.trickle_bytes)
                n = (size_t)j->fault.trickle_bytes;
            memcpy(buf, j->pending.p + j->pending_off, n);
            j->pending_off += n;
            j->pieces_written++;
            if (j->pending_off == j->pending.n) {
                fl_buf_truncate(&j->pending, 0);
                j->pending_off = 0;
            }
            return (ssize_t)n;
        }
        if (j->phase == PH_END) {
            job_release_slots(j);
            return j->end_error ? MHD_CONTENT_READER_END_WITH_ERROR
                                : MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (j->phase == PH_FINAL) {
            job_release_slots(j);
            emit_end(j);
            j->phase = PH_END;
            continue;
        }
        /* a quick check so that a client that left is noticed even without delays */
        if (job_waited(j, fl_wait_watch(j->fd, 0))) {
            j->phase = PH_END;
            j->end_error = 1;
            continue;
        }
        int rc = job_advance(j);
        switch (rc) {
        case ADV_OK:
            break;
        case ADV_DONE:
            j->phase = PH_FINAL;
            break;
        case ADV_CANCEL:
            j->phase = PH_END;
            j->end_error = 1;
            break;
        case ADV_DIE:
            if (j->rec)
                fl_rec_finish(j->rec, FL_OUT_DIED);
            j->phase = PH_END;
            j->end_error = 1;
            break;
        case ADV_ERROR: {
            char *m = fault_message(j, "error");
            emit_error_event(j, m);
            free(m);
        }
            /* fall through */
        default:
            if (j->rec)
                fl_rec_finish(j->rec, FL_OUT_ERROR);
            j->phase = PH_END;
            break;
        }
    }
}

static void stream_free(void *cls)
{
    job_free(cls);
}

/* ================================================================ request -> job */

static int parse_stop(fl_job_t *j, json_t *body, fl_err_t *e)
{
    json_t *stop = json_object_get(body, "stop");
    json_t *arr;
    size_t i;
    json_t *v;

    if (!stop || json_is_null(stop))
        return 0;
    if (json_is_string(stop)) {
        arr = json_array();
        json_array_append(arr, stop);
    } else if (json_is_array(stop)) {
        arr = json_incref(stop);
    } else {
        set_err(e, 400, "invalid_request_error",
                "Field 'stop': [json.exception.type_error.302] type must be array, but is %s",
                json_type_name(stop));
        return -1;
    }
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v)) {
            set_err(e, 400, "invalid_request_error",
                    "Field 'stop': [json.exception.type_error.302] type must be string, but is %s",
                    json_type_name(v));
            json_decref(arr);
            return -1;
        }
    }
    j->n_stops = json_array_size(arr);
    j->stops = fl_xcalloc(j->n_stops, sizeof(char *));
    j->stop_lens = fl_xcalloc(j->n_stops, sizeof(size_t));
    json_array_foreach(arr, i, v) {
        j->stops[i] = fl_xstrndup(json_string_value(v), json_string_length(v));
        j->stop_lens[i] = json_string_length(v);
    }
    json_decref(arr);
    return 0;
}

static int clamp_int(long long v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : (int)v;
}

/* The fake_* extension fields. */
static int parse_fake(fl_job_t *j, json_t *body, fl_err_t *e)
{
    json_t *toks = json_object_get(body, "fake_tokens");
    json_t *f = json_object_get(body, "fake_fault");
    long long v;

    j->token_ms = opt.token_ms;
    v = json_integer_value(json_object_get(body, "fake_token_ms"));
    if (json_is_number(json_object_get(body, "fake_token_ms")))
        j->token_ms = clamp_int((long long)json_number_value(json_object_get(body,
                                                                             "fake_token_ms")),
                                0, 3600000);
    (void)v;
    j->fault.stall_after = j->fault.die_after = j->fault.error_after = -1;
    j->fault.trickle_ms = 2;
    if (json_is_object(f)) {
        struct { const char *key; int *dst; } map[] = {
            { "delay_headers_ms", &j->fault.delay_headers_ms },
            { "stall_after", &j->fault.stall_after },
            { "stall_ms", &j->fault.stall_ms },
            { "die_after", &j->fault.die_after },
            { "error_after", &j->fault.error_after },
            { "trickle_bytes", &j->fault.trickle_bytes },
            { "trickle_ms", &j->fault.trickle_ms },
            { "status", &j->fault.status },
        };
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
            json_t *x = json_object_get(f, map[i].key);
            if (json_is_number(x))
                *map[i].dst = clamp_int((long long)json_number_value(x), -1, 3600000);
        }
        json_t *m = json_object_get(f, "message");
        if (json_is_string(m))
            j->fault.message = fl_xstrdup(json_string_value(m));
    }
    if (toks && !json_is_null(toks)) {
        size_t i;
        json_t *t;
        if (!json_is_array(toks)) {
            set_err(e, 400, "invalid_request_error", "fake_tokens must be an array of token ids");
            return -1;
        }
        json_array_foreach(toks, i, t) {
            if (!json_is_integer(t) || !fl_tok_valid(json_integer_value(t))) {
                set_err(e, 400, "invalid_request_error",
                        "fake_tokens[%zu]: not a token id in 0..%d", i, fl_vocab_size() - 1);
                return -1;
            }
            fl_toks_push(&j->script, (int)json_integer_value(t));
        }
        j->scripted = 1;
    }
    return 0;
}

/* Reads max_tokens / n_predict. */
static int parse_n_predict(fl_job_t *j, json_t *body, fl_err_t *e)
{
    static const char *const keys[] = { "n_predict", "max_tokens", "max_completion_tokens" };
    long long v;

    j->n_predict = opt.n_predict;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        int rc = get_int_field(body, keys[i], &v, e);
        if (rc < 0)
            return -1;
        if (rc > 0) {
            j->n_predict = v < -1 ? -1 : v > 1000000000 ? 1000000000 : (int)v;
            break;
        }
    }
    return 0;
}

/* Prompt of /v1/completions and /completion: a string, or token ids, or a mixed array. */
static int parse_prompt(fl_job_t *j, json_t *body, fl_err_t *e)
{
    json_t *p = json_object_get(body, "prompt");

    if (!p) {
        set_err(e, 400, "invalid_request_error", "\"prompt\" must be provided");
        return -1;
    }
    if (json_is_string(p)) {
        fl_tokenize(json_string_value(p), json_string_length(p), 1, 1, &j->prompt);
        return 0;
    }
    if (json_is_array(p)) {
        size_t i;
        json_t *x;
        /* an array of strings is several prompts: only the first is used */
        if (json_array_size(p) > 0 && json_is_string(json_array_get(p, 0)) &&
            json_array_size(p) > 1 && json_is_string(json_array_get(p, 1))) {
            x = json_array_get(p, 0);
            fl_tokenize(json_string_value(x), json_string_length(x), 1, 1, &j->prompt);
            return 0;
        }
        json_array_foreach(p, i, x) {
            if (json_is_string(x)) {
                fl_tokenize(json_string_value(x), json_string_length(x), i == 0, 1, &j->prompt);
            } else if (json_is_integer(x) && fl_tok_valid(json_integer_value(x))) {
                fl_toks_push(&j->prompt, (int)json_integer_value(x));
            } else {
                set_err(e, 400, "invalid_request_error", "invalid prompt element at index %zu",
                        i);
                return -1;
            }
        }
        return 0;
    }
    set_err(e, 400, "invalid_request_error", "\"prompt\" must be a string or an array");
    return -1;
}

static uint64_t prompt_seed(const fl_toks_t *t)
{
    uint64_t h = 0;

    for (size_t i = 0; i < t->n; i++)
        h = fl_fnv1a(h, &t->v[i], sizeof(int));
    return h ? h : 1;
}

/* Builds a job from a generation request; returns NULL with *e set on error. */
static fl_job_t *job_new(fl_req_t *r, fl_ep_t ep, json_t *body, fl_err_t *e)
{
    fl_job_t *j = fl_xcalloc(1, sizeof(*j));
    json_t *mv = json_object_get(body, "model");

    j->ep = ep;
    j->fd = r->fd;
    j->rec = r->rec;
    if (j->rec)
        fl_rec_ref(j->rec);
    j->origin = r->origin ? fl_xstrdup(r->origin) : NULL;
    j->created = (long long)time(NULL);
    make_id(j->id, sizeof(j->id));
    j->stream = get_bool(body, "stream", 0);
    j->n_choices = 1;
    j->temperature = 0.8;
    if (json_is_number(json_object_get(body, "temperature")))
        j->temperature = json_number_value(json_object_get(body, "temperature"));
    if (opt.old && ep != EP_NATIVE)
        j->model = fl_xstrdup(json_is_string(mv) ? json_string_value(mv) : "gpt-3.5-turbo");
    else
        j->model = fl_xstrdup(server_model());

    if (parse_fake(j, body, e) < 0 || parse_n_predict(j, body, e) < 0 ||
        parse_stop(j, body, e) < 0)
        goto fail;
    if (!opt.old) {
        j->verbose = get_bool(body, "verbose", 0);
        j->return_tokens = get_bool(body, "return_tokens", 0);
    }
    if (ep == EP_NATIVE)
        j->return_tokens = get_bool(body, "return_tokens", 0);

    if (ep == EP_CHAT) {
        fl_buf_t tpl = {0};
        size_t n_msgs = 0;
        json_t *lp = json_object_get(body, "logprobs");
        json_t *top = json_object_get(body, "top_logprobs");
        long long n = 1;

        if (apply_template(body, &tpl, &n_msgs, e) < 0) {
            fl_buf_free(&tpl);
            goto fail;
        }
        fl_tokenize(tpl.p, tpl.n, 1, 1, &j->prompt);
        fl_buf_free(&tpl);
        if (n_msgs == 0 && !opt.old) {
            set_err(e, 500, "server_error",
                    "The model produced output that does not match the expected peg-native "
                    "format");
            goto fail;
        }
        if (top && !json_is_null(top) && !json_is_true(lp)) {
            set_err(e, opt.old ? 500 : 400, opt.old ? "server_error" : "invalid_request_error",
                    "top_logprobs requires logprobs to be set to true");
            goto fail;
        }
        if (json_is_true(lp)) {
            long long tl = 20;
            if (json_is_number(top))
                tl = (long long)json_number_value(top);
            if (opt.old && tl < 1)
                tl = 1;
            j->n_probs = clamp_int(tl, 0, fl_vocab_size());
            if (!opt.old && j->stream && json_object_get(body, "tools") &&
                !json_is_null(json_object_get(body, "tools"))) {
                set_err(e, 400, "invalid_request_error",
                        "logprobs is not supported with tools + stream");
                goto fail;
            }
        }
        if (get_int_field(body, "n", &n, e) < 0)
            goto fail;
        if (opt.old && n != 1) {
            set_err(e, 500, "server_error", "Only one completion choice is allowed");
            goto fail;
        }
        if (n < 1 || n > opt.parallel || n > FL_MAX_CHOICES) {
            set_err(e, 400, "invalid_request_error",
                    "n_cmpl must be between 1 and the number of slots (%d)", opt.parallel);
            goto fail;
        }
        j->n_choices = (int)n;
        json_t *so = json_object_get(body, "stream_options");
        j->include_usage = json_is_object(so) && get_bool(so, "include_usage", 0);
        j->timings_per_token = get_bool(body, "timings_per_token", 0);
        if (json_is_integer(json_object_get(body, "fake_spec_every")))
            j->spec_every = clamp_int(json_integer_value(json_object_get(body, "fake_spec_every")),
                                      0, 1000);
    } else {
        json_t *np = json_object_get(body, "n_probs");
        if (!np)
            np = json_object_get(body, "logprobs");
        if (json_is_number(np))
            j->n_probs = clamp_int((long long)json_number_value(np), 0, fl_vocab_size());
        else if (json_is_true(np))
            j->n_probs = 1;
        if (parse_prompt(j, body, e) < 0)
            goto fail;
    }
    {
        fl_buf_t pt = {0};
        fl_detokenize(j->prompt.v, j->prompt.n, &pt);
        j->prompt_text = fl_buf_take(&pt, NULL);
    }
    if ((int)j->prompt.n >= opt.n_ctx) {
        set_err(e, 400, "exceed_context_size_error",
                "request (%zu tokens) exceeds the available context size (%d tokens), try "
                "increasing it",
                j->prompt.n, opt.n_ctx);
        goto fail;
    }
    uint64_t seed = prompt_seed(&j->prompt);
    for (int i = 0; i < j->n_choices; i++) {
        fl_gen_params_t gp = {
            .script = j->script.v,
            .n_script = j->script.n,
            .scripted = j->scripted,
            .seed = seed + (uint64_t)i * 0x9E3779B97F4A7C15ULL,
            .n_predict = j->n_predict,
            .n_prompt = (int)j->prompt.n,
            .n_ctx = opt.n_ctx,
            .stops = (const char *const *)j->stops,
            .stop_len = j->stop_lens,
            .n_stops = j->n_stops,
            .n_probs = j->n_probs,
        };
        fl_gen_init(&j->gens[i], &gp);
    }
    return j;
fail:
    job_free(j);
    return NULL;
}

/* ---------------------------------------------------------------- non-stream bodies */

static json_t *chat_body(fl_job_t *j)
{
    json_t *o = json_object();
    json_t *choices = json_array();

    for (int i = 0; i < j->n_choices; i++) {
        const fl_gen_t *g = &j->gens[i];
        json_t *c = json_object();
        json_t *msg = json_object();
        json_object_set_new(c, "finish_reason", json_string(finish_reason(g)));
        json_object_set_new(c, "index", json_integer(i));
        json_object_set_new(msg, "role", json_string("assistant"));
        json_object_set_new(msg, "content", fl_json_bytes(g->text.p ? g->text.p : "", g->text.n));
        json_object_set_new(c, "message", msg);
        if (j->n_probs > 0) {
            json_t *lp = json_object();
            json_t *arr = json_array();
            size_t n = fl_gen_items_final(g);
            for (size_t k = 0; k < n; k++)
                json_array_append_new(arr, fl_item_json(&g->items[k]));
            json_object_set_new(lp, "content", arr);
            json_object_set_new(c, "logprobs", lp);
        }
        json_array_append_new(choices, c);
    }
    json_object_set_new(o, "choices", choices);
    json_object_set_new(o, "created", json_integer(j->created));
    json_object_set_new(o, "model", json_string(j->model));
    json_object_set_new(o, "system_fingerprint", json_string(fingerprint()));
    json_object_set_new(o, "object", json_string("chat.completion"));
    json_object_set_new(o, "usage", usage_json(j));
    json_object_set_new(o, "id", json_string(j->id));
    if (j->verbose)
        json_object_set_new(o, "__verbose", native_final(j, 0, 0));
    json_object_set_new(o, "timings", timings_json(j, &j->gens[0]));
    return o;
}

static json_t *cmpl_body(fl_job_t *j)
{
    const fl_gen_t *g = &j->gens[0];
    json_t *lp = NULL;

    if (j->n_probs > 0) {
        json_t *arr = json_array();
        size_t n = fl_gen_items_final(g);
        lp = json_object();
        for (size_t k = 0; k < n; k++)
            json_array_append_new(arr, fl_item_json(&g->items[k]));
        json_object_set_new(lp, "content", arr);
    }
    json_t *o = cmpl_chunk(j, 0, g->text.p ? g->text.p : "", g->text.n, lp, finish_reason(g));
    json_object_set_new(o, "usage", usage_json(j));
    json_object_set_new(o, "id", json_string(j->id));
    if (j->verbose)
        json_object_set_new(o, "__verbose", native_final(j, 0, 0));
    json_object_set_new(o, "timings", timings_json(j, g));
    return o;
}

/* ---------------------------------------------------------------- the handler */

static enum MHD_Result handle_generation(fl_req_t *r, fl_ep_t ep)
{
    fl_err_t e = {0};
    json_t *body = parse_body(r, &e);

    if (!body)
        return respond_err(r, &e);
    if (opt.crash_on_request && json_is_true(json_object_get(body, "fake_crash"))) {
        fprintf(stderr, "fake-llama: fake_crash requested, aborting\n");
        abort();
    }
    fl_job_t *j = job_new(r, ep, body, &e);
    json_decref(body);
    if (!j) {
        /* faults must apply even when the request is otherwise invalid */
        return respond_err(r, &e);
    }
    if (j->fault.delay_headers_ms > 0 &&
        job_waited(j, fl_wait_watch(r->fd, j->fault.delay_headers_ms))) {
        job_free(j);
        return MHD_NO;
    }
    if (j->fault.status > 0) {
        int st = j->fault.status;
        char *m = j->fault.message ? fl_xstrdup(j->fault.message) : NULL;
        char buf[128];
        if (!m) {
            snprintf(buf, sizeof(buf), "fake-llama: injected HTTP %d", st);
            m = fl_xstrdup(buf);
        }
        job_free(j);
        enum MHD_Result rc = respond_error(r, st, type_for_status(st), m);
        free(m);
        return rc;
    }
    int w = fl_slots_acquire(j->n_choices, r->fd, (int)j->prompt.n, j->slot_ids);
    if (w != FL_WAIT_OK) {
        job_waited(j, w);
        job_free(j);
        return MHD_NO;
    }
    j->n_slots = j->n_choices;
    j->acquired = 1;
    j->t_gen_start_us = fl_now_us();

    if (j->stream) {
        struct MHD_Response *resp = MHD_create_response_from_callback(
            MHD_SIZE_UNKNOWN, 16384, stream_reader, j, stream_free);
        add_common_headers(resp, r, "text/event-stream", 200, 1);
        if (r->rec)
            fl_rec_set_status(r->rec, 200);
        enum MHD_Result rc = MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return rc;
    }

    for (;;) {
        int rc = job_advance(j);
        if (rc == ADV_OK)
            continue;
        if (rc == ADV_DONE)
            break;
        if (rc == ADV_CANCEL) {
            job_free(j);
            return MHD_NO;
        }
        if (rc == ADV_DIE) {
            if (j->rec)
                fl_rec_finish(j->rec, FL_OUT_DIED);
            job_free(j);
            return MHD_NO;
        }
        /* ADV_ERROR */
        char *m = fault_message(j, "error");
        size_t piece = (size_t)j->fault.trickle_bytes;
        int pms = j->fault.trickle_ms;
        job_free(j);
        enum MHD_Result res = respond_json_ex(r, 500, error_body(500, "server_error", m), piece,
                                              pms);
        free(m);
        return res;
    }
    job_release_slots(j);
    if (!opt.old) {
        for (int i = 0; i < j->n_choices; i++) {
            const fl_gen_t *g = &j->gens[i];
            if (!fl_utf8_valid(g->text.p, g->text.n, 1)) {
                char msg[128];
                snprintf(msg, sizeof(msg),
                         "The model produced output that does not match the expected %s format",
                         parse_format(j));
                job_free(j);
                return respond_error(r, 500, "server_error", msg);
            }
        }
    }
    json_t *out;
    if (ep == EP_CHAT)
        out = chat_body(j);
    else if (ep == EP_CMPL)
        out = cmpl_body(j);
    else
        out = native_final(j, 0, 0);
    if (j->rec)
        fl_rec_set_tokens(j->rec, j->tokens_total);
    size_t piece = (size_t)j->fault.trickle_bytes;
    int pms = j->fault.trickle_ms;
    job_free(j);
    return respond_json_ex(r, 200, out, piece, pms);
}

static enum MHD_Result h_chat(fl_req_t *r)
{
    return handle_generation(r, EP_CHAT);
}

static enum MHD_Result h_cmpl(fl_req_t *r)
{
    return handle_generation(r, EP_CMPL);
}

static enum MHD_Result h_native(fl_req_t *r)
{
    return handle_generation(r, EP_NATIVE);
}

/* ================================================================ other routes */

static enum MHD_Result h_health(fl_req_t *r)
{
    json_t *o = json_object();

    json_object_set_new(o, "status", json_string("ok"));
    return respond_json(r, 200, o);
}

static enum MHD_Result h_models(fl_req_t *r)
{
    const char *name = server_model();
    json_t *o = json_object();
    json_t *data = json_array();
    json_t *d = json_object();
    json_t *meta = json_object();

    if (!opt.old) {
        json_t *models = json_array();
        json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[s], s:[s], s:s, "
                              "s:{s:s, s:s, s:s, s:[s], s:s, s:s}}",
                              "name", name, "model", name, "modified_at", "", "size", "",
                              "digest", "", "type", "model", "description", "", "tags", "",
                              "capabilities", "completion", "parameters", "", "details",
                              "parent_model", "", "format", "gguf", "family", "", "families",
                              "", "parameter_size", "", "quantization_level", "");
        json_array_append_new(models, m);
        json_object_set_new(o, "models", models);
    }
    json_object_set_new(o, "object", json_string("list"));
    json_object_set_new(d, "id", json_string(name));
    if (!opt.old) {
        json_t *aliases = json_array();
        json_array_append_new(aliases, json_string(name));
        json_object_set_new(d, "aliases", aliases);
        json_object_set_new(d, "tags", json_array());
    }
    json_object_set_new(d, "object", json_string("model"));
    json_object_set_new(d, "created", json_integer((json_int_t)time(NULL)));
    json_object_set_new(d, "owned_by", json_string("llamacpp"));
    json_object_set_new(meta, "vocab_type", opt.old ? json_integer(1) : json_true());
    json_object_set_new(meta, "n_vocab", json_integer(fl_vocab_size()));
    if (!opt.old)
        json_object_set_new(meta, "n_ctx", json_integer(opt.n_ctx));
    json_object_set_new(meta, "n_ctx_train", json_integer(opt.n_ctx * 2));
    json_object_set_new(meta, "n_embd", json_integer(64));
    json_object_set_new(meta, "n_params", json_integer(4178240));
    json_object_set_new(meta, "size", json_integer(16712960));
    if (!opt.old)
        json_object_set_new(meta, "ftype", json_string("all F32"));
    json_object_set_new(d, "meta", meta);
    json_array_append_new(data, d);
    json_object_set_new(o, "data", data);
    return respond_json(r, 200, o);
}

static const char chat_template_jinja[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'system') %}"
    "{{'<|system|>' + '\\n' + message['content'] + '<|end|>' + '\\n'}}"
    "{% elif (message['role'] == 'user') %}{{'<|user|>' + '\\n' + message['content'] + "
    "'<|end|>' + '\\n' + '<|assistant|>' + '\\n'}}{% elif (message['role'] == 'assistant') "
    "%}{{message['content'] + '<|end|>' + '\\n'}}{% endif %}{% endfor %}";

static enum MHD_Result h_props(fl_req_t *r)
{
    json_t *o = json_object();
    json_t *dgs = json_object();
    json_t *params = json_deep_copy(g_gen_settings);

    json_object_set_new(params, "max_tokens", json_integer(-1));
    json_object_set_new(params, "n_predict", json_integer(-1));
    json_object_set_new(params, "chat_format", json_string("Content-only"));
    json_object_set_new(params, "reasoning_format", json_string("none"));
    json_object_del(params, "dry_sequence_breakers");
    json_object_del(params, "stop");
    json_object_del(params, "logit_bias");
    json_object_del(params, "grammar");
    json_object_del(params, "grammar_lazy");
    json_object_del(params, "grammar_triggers");
    json_object_del(params, "preserved_tokens");
    json_object_set_new(dgs, "params", params);
    json_object_set_new(dgs, "n_ctx", json_integer(opt.n_ctx));
    json_object_set_new(o, "default_generation_settings", dgs);
    json_object_set_new(o, "total_slots", json_integer(opt.parallel));
    json_object_set_new(o, "model_alias", json_string(server_model()));
    json_object_set_new(o, "model_ftype", json_string("all F32"));
    json_object_set_new(o, "model_path", json_string(opt.model));
    json_object_set_new(o, "modalities",
                        json_pack("{s:b, s:b, s:b}", "vision", 0, "video", 0, "audio", 0));
    json_object_set_new(o, "endpoint_slots", json_true());
    json_object_set_new(o, "endpoint_props", json_false());
    json_object_set_new(o, "endpoint_metrics", json_false());
    json_object_set_new(o, "ui", json_false());
    json_object_set_new(o, "ui_settings", json_object());
    json_object_set_new(o, "chat_template", json_string(chat_template_jinja));
    json_object_set_new(o, "chat_template_caps",
                        json_pack("{s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b, s:b}",
                                  "supports_object_arguments", 0,
                                  "supports_parallel_tool_calls", 0,
                                  "supports_preserve_reasoning", 0, "supports_reasoning_effort",
                                  0, "supports_string_content", 1, "supports_system_role", 1,
                                  "supports_tool_calls", 0, "supports_tools", 0,
                                  "supports_typed_content", 0));
    json_object_set_new(o, "bos_token", json_string("<s>"));
    json_object_set_new(o, "eos_token", json_string("</s>"));
    json_object_set_new(o, "build_info", json_string(fingerprint()));
    json_object_set_new(o, "is_sleeping", json_false());
    json_object_set_new(o, "cors_proxy_enabled", json_false());
    return respond_json(r, 200, o);
}

static enum MHD_Result h_slots(fl_req_t *r)
{
    return respond_json(r, 200, fl_slots_json());
}

static enum MHD_Result h_metrics(fl_req_t *r)
{
    return respond_error(r, 501, "not_supported_error",
                         "This server does not support metrics endpoint. Start it with "
                         "`--metrics`");
}

static void tokenize_content(json_t *content, int add_special, int parse_special, fl_toks_t *out)
{
    if (json_is_string(content)) {
        fl_tokenize(json_string_value(content), json_string_length(content), add_special,
                    parse_special, out);
    } else if (json_is_array(content)) {
        size_t i;
        json_t *x;
        int first_str = 1;
        json_array_foreach(content, i, x) {
            if (json_is_string(x)) {
                fl_tokenize(json_string_value(x), json_string_length(x),
                            add_special && first_str && i == 0, parse_special, out);
                first_str = 0;
            } else if (json_is_integer(x)) {
                fl_toks_push(out, (int)json_integer_value(x));
            }
        }
    }
}

static enum MHD_Result h_tokenize(fl_req_t *r)
{
    fl_err_t e = {0};
    json_t *body = parse_body(r, &e);

    if (!body)
        return respond_err(r, &e);
    json_t *content = json_object_get(body, "content");
    int add_special = get_bool(body, "add_special", 0);
    int parse_special = opt.old ? 1 : get_bool(body, "parse_special", 1);
    int with_pieces = get_bool(body, "with_pieces", 0);
    fl_toks_t t = {0};
    json_t *arr = json_array();

    if (content)
        tokenize_content(content, add_special, parse_special, &t);
    for (size_t i = 0; i < t.n; i++) {
        if (!with_pieces) {
            json_array_append_new(arr, json_integer(t.v[i]));
            continue;
        }
        size_t l;
        const char *p = fl_tok_piece(t.v[i], 1, &l);
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(t.v[i]));
        if (fl_utf8_valid(p, l, 0)) {
            json_object_set_new(o, "piece", json_stringn(p, l));
        } else {
            json_t *bytes = json_array();
            for (size_t k = 0; k < l; k++)
                json_array_append_new(bytes, json_integer((unsigned char)p[k]));
            json_object_set_new(o, "piece", bytes);
        }
        json_array_append_new(arr, o);
    }
    fl_toks_free(&t);
    json_decref(body);
    json_t *o = json_object();
    json_object_set_new(o, "tokens", arr);
    return respond_json(r, 200, o);
}

static enum MHD_Result h_detokenize(fl_req_t *r)
{
    fl_err_t e = {0};
    json_t *body = parse_body(r, &e);
    fl_toks_t t = {0};
    fl_buf_t out = {0};
    size_t i;
    json_t *x;

    if (!body)
        return respond_err(r, &e);
    json_t *toks = json_object_get(body, "tokens");
    json_array_foreach(toks, i, x) {
        if (!json_is_integer(x)) {
            set_err(&e, 500, "server_error",
                    "[json.exception.type_error.302] type must be number, but is %s",
                    json_type_name(x));
            goto fail;
        }
        long long id = json_integer_value(x);
        if (!fl_tok_valid(id)) {
            set_err(&e, 500, "server_error",
                    "vector::_M_range_check: __n (which is %llu) >= this->size() (which is %d)",
                    (unsigned long long)id, fl_vocab_size());
            goto fail;
        }
        fl_toks_push(&t, (int)id);
    }
    fl_detokenize(t.v, t.n, &out);
    fl_toks_free(&t);
    json_decref(body);
    json_t *o = json_object();
    json_object_set_new(o, "content", fl_json_bytes(out.p ? out.p : "", out.n));
    fl_buf_free(&out);
    return respond_json(r, 200, o);
fail:
    fl_toks_free(&t);
    json_decref(body);
    return respond_err(r, &e);
}

static enum MHD_Result h_apply_template(fl_req_t *r)
{
    fl_err_t e = {0};
    json_t *body = parse_body(r, &e);
    fl_buf_t tpl = {0};
    size_t n_msgs;

    if (!body)
        return respond_err(r, &e);
    if (apply_template(body, &tpl, &n_msgs, &e) < 0) {
        json_decref(body);
        fl_buf_free(&tpl);
        return respond_err(r, &e);
    }
    json_decref(body);
    json_t *o = json_object();
    json_object_set_new(o, "prompt", fl_json_bytes(tpl.p, tpl.n));
    fl_buf_free(&tpl);
    return respond_json(r, 200, o);
}

/* A deterministic unit-length vector per input. */
static json_t *embed(const fl_toks_t *t)
{
    double v[64];
    double norm = 0.0;
    json_t *a = json_array();

    for (int d = 0; d < 64; d++) {
        uint64_t h = fl_fnv1a(0, &d, sizeof(d));
        double s = 0.0;
        for (size_t i = 0; i < t->n; i++) {
            uint64_t x = fl_fnv1a(h, &t->v[i], sizeof(int));
            s += (double)(x % 2001) / 1000.0 - 1.0;
        }
        v[d] = s;
        norm += s * s;
    }
    norm = norm > 0 ? sqrt(norm) : 1.0;
    for (int d = 0; d < 64; d++)
        json_array_append_new(a, fl_json_f32((float)(v[d] / norm)));
    return a;
}

static enum MHD_Result h_embeddings(fl_req_t *r)
{
    fl_err_t e = {0};
    json_t *body = parse_body(r, &e);

    if (!body)
        return respond_err(r, &e);
    json_t *input = json_object_get(body, "input");
    if (!input)
        input = json_object_get(body, "content");
    json_t *inputs = json_array();
    if (json_is_array(input) && json_array_size(input) > 0 &&
        !json_is_integer(json_array_get(input, 0)))
        json_array_extend(inputs, input);
    else if (input)
        json_array_append(inputs, input);
    if (json_array_size(inputs) == 0) {
        json_decref(inputs);
        json_decref(body);
        return respond_error(r, 400, "invalid_request_error",
                             "\"input\" or \"content\" must be provided");
    }
    json_t *data = json_array();
    long n_tokens = 0;
    size_t i;
    json_t *x;
    json_array_foreach(inputs, i, x) {
        fl_toks_t t = {0};
        tokenize_content(x, 1, 1, &t);
        n_tokens += (long)t.n;
        json_t *d = json_object();
        json_object_set_new(d, "embedding", embed(&t));
        json_object_set_new(d, "index", json_integer((json_int_t)i));
        json_object_set_new(d, "object", json_string("embedding"));
        json_array_append_new(data, d);
        fl_toks_free(&t);
    }
    json_t *mv = json_object_get(body, "model");
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(json_is_string(mv) ? json_string_value(mv)
                                                                   : "gpt-3.5-turbo"));
    json_object_set_new(o, "object", json_string("list"));
    json_object_set_new(o, "usage", json_pack("{s:i, s:i}", "prompt_tokens", (int)n_tokens,
                                              "total_tokens", (int)n_tokens));
    json_object_set_new(o, "data", data);
    json_decref(inputs);
    json_decref(body);
    return respond_json(r, 200, o);
}

static enum MHD_Result h_not_supported(fl_req_t *r)
{
    return respond_error(r, 501, "not_supported_error",
                         "This server does not support this endpoint in fake-llama");
}

/* ---------------------------------------------------------------- test control */

static enum MHD_Result h_fake_log(fl_req_t *r)
{
    return respond_json(r, 200, fl_log_json());
}

static enum MHD_Result h_fake_reset(fl_req_t *r)
{
    fl_log_reset();
    return respond_json(r, 200, json_pack("{s:b}", "ok", 1));
}

/* ================================================================ routing */

typedef enum MHD_Result (*fl_handler_t)(fl_req_t *r);

typedef struct fl_route {
    const char *method;
    const char *path;
    fl_handler_t fn;
} fl_route_t;

static const fl_route_t routes[] = {
    { "GET", "/health", h_health },
    { "GET", "/v1/health", h_health },
    { "GET", "/metrics", h_metrics },
    { "GET", "/props", h_props },
    { "GET", "/models", h_models },
    { "GET", "/v1/models", h_models },
    { "GET", "/slots", h_slots },
    { "POST", "/completion", h_native },
    { "POST", "/completions", h_native },
    { "POST", "/v1/completions", h_cmpl },
    { "POST", "/chat/completions", h_chat },
    { "POST", "/v1/chat/completions", h_chat },
    { "POST", "/tokenize", h_tokenize },
    { "POST", "/detokenize", h_detokenize },
    { "POST", "/apply-template", h_apply_template },
    { "POST", "/v1/embeddings", h_embeddings },
    { "POST", "/embeddings", h_embeddings },
    { "POST", "/embedding", h_embeddings },
    { "POST", "/infill", h_not_supported },
    { "POST", "/rerank", h_not_supported },
    { "POST", "/v1/rerank", h_not_supported },
    { NULL, NULL, NULL },
};

static enum MHD_Result preflight(fl_req_t *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);

    MHD_add_response_header(resp, "Server", "llama.cpp");
    MHD_add_response_header(resp, "Access-Control-Allow-Origin",
                            r->origin && r->origin[0] ? r->origin : " ");
    MHD_add_response_header(resp, "Access-Control-Allow-Credentials", "true");
    MHD_add_response_header(resp, "Access-Control-Allow-Methods",
                            opt.old ? "GET, POST" : "GET, POST, DELETE, OPTIONS");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "*");
    MHD_add_response_header(resp, "Content-Type", "text/html");
    MHD_add_response_header(resp, "Keep-Alive", "timeout=5, max=100");
    if (r->rec)
        fl_rec_set_status(r->rec, 200);
    enum MHD_Result rc = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

static int authorized(fl_req_t *r)
{
    if (!opt.api_key)
        return 1;
    if (r->auth && strncasecmp(r->auth, "Bearer ", 7) == 0 && strcmp(r->auth + 7, opt.api_key) == 0)
        return 1;
    if (r->x_api_key && strcmp(r->x_api_key, opt.api_key) == 0)
        return 1;
    return 0;
}

static enum MHD_Result dispatch(fl_req_t *r)
{
    if (r->is_fake) {
        if (strcmp(r->method, "GET") == 0 && strcmp(r->path, "/__fake/log") == 0)
            return h_fake_log(r);
        if (strcmp(r->method, "POST") == 0 && strcmp(r->path, "/__fake/reset") == 0)
            return h_fake_reset(r);
        return respond_error(r, 404, "not_found_error", "File Not Found");
    }
    if (strcmp(r->method, "OPTIONS") == 0)
        return preflight(r);
    if (!g_ready)
        return respond_error(r, 503, "unavailable_error", "Loading model");
    int is_health = strcmp(r->path, "/health") == 0 || strcmp(r->path, "/v1/health") == 0;
    if (!is_health && !authorized(r))
        return respond_error(r, 401, "authentication_error", "Invalid API Key");
    if (r->too_big)
        return respond_error(r, 413, "invalid_request_error", "request body too large");
    for (const fl_route_t *rt = routes; rt->method; rt++)
        if (strcmp(rt->method, r->method) == 0 && strcmp(rt->path, r->path) == 0)
            return rt->fn(r);
    return respond_error(r, 404, "not_found_error", "File Not Found");
}

/* ================================================================ MHD callbacks */

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    fl_req_t *r = cls;
    char name[256];
    size_t i;

    (void)kind;
    for (i = 0; key[i] && i + 1 < sizeof(name); i++)
        name[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] + 32 : key[i]);
    name[i] = '\0';
    if (!value)
        value = "";
    if (strcmp(name, "origin") == 0) {
        free(r->origin);
        r->origin = fl_xstrdup(value);
    } else if (strcmp(name, "authorization") == 0) {
        free(r->auth);
        r->auth = fl_xstrdup(value);
    } else if (strcmp(name, "x-api-key") == 0) {
        free(r->x_api_key);
        r->x_api_key = fl_xstrdup(value);
    }
    return MHD_YES;
}

static enum MHD_Result collect_header_json(void *cls, enum MHD_ValueKind kind, const char *key,
                                           const char *value)
{
    json_t *headers = cls;
    char name[256];
    size_t i;

    (void)kind;
    for (i = 0; key[i] && i + 1 < sizeof(name); i++)
        name[i] = (char)((key[i] >= 'A' && key[i] <= 'Z') ? key[i] + 32 : key[i]);
    name[i] = '\0';
    json_object_set_new(headers, name, fl_json_bytes(value ? value : "", value ? strlen(value)
                                                                                : 0));
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    fl_req_t *r = *con_cls;

    (void)cls;
    (void)version;
    if (!r) {
        long long t0 = fl_now_us();
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        r = fl_xcalloc(1, sizeof(*r));
        r->conn = conn;
        r->method = fl_xstrdup(method);
        r->path = fl_xstrdup(url);
        r->fd = ci ? ci->connect_fd : -1;
        r->is_fake = strncmp(url, "/__fake/", 8) == 0;
        MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, r);
        if (!r->is_fake) {
            json_t *headers = json_object();
            MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header_json, headers);
            r->rec = fl_log_add(method, url, headers, t0);
        }
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (r->body.n + *upload_data_size > FL_MAX_BODY)
            r->too_big = 1;
        else
            fl_buf_add(&r->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->dispatched)
        return MHD_YES;
    r->dispatched = 1;
    if (r->rec)
        fl_rec_set_body(r->rec, r->body.p ? r->body.p : "", r->body.n);
    return dispatch(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    fl_req_t *r = *con_cls;

    (void)cls;
    (void)conn;
    if (!r)
        return;
    if (r->rec) {
        fl_rec_finish(r->rec, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? FL_OUT_COMPLETED
                                                                          : FL_OUT_CANCELLED);
        if (!opt.quiet) {
            char line[512];
            fl_rec_describe(r->rec, line, sizeof(line));
            fprintf(stderr, "fake-llama: %s\n", line);
        }
    }
    req_free(r);
    *con_cls = NULL;
}

/* ================================================================ main */

static const char gen_settings_template[] =
    "{\"seed\":4294967295,\"temperature\":0.800000011920929,\"dynatemp_range\":0.0,"
    "\"dynatemp_exponent\":1.0,\"top_k\":40,\"top_p\":0.949999988079071,"
    "\"min_p\":0.05000000074505806,\"top_n_sigma\":-1.0,\"xtc_probability\":0.0,"
    "\"xtc_threshold\":0.10000000149011612,\"typical_p\":1.0,\"repeat_last_n\":64,"
    "\"repeat_penalty\":1.0,\"presence_penalty\":0.0,\"frequency_penalty\":0.0,"
    "\"dry_multiplier\":0.0,\"dry_base\":1.75,\"dry_allowed_length\":2,"
    "\"dry_penalty_last_n\":64,\"dry_sequence_breakers\":[\"\\n\",\":\",\"\\\"\",\"*\"],"
    "\"mirostat\":0,\"mirostat_tau\":5.0,\"mirostat_eta\":0.10000000149011612,"
    "\"adaptive_target\":-1.0,\"adaptive_decay\":0.8999999761581421,\"stop\":[],"
    "\"max_tokens\":16,\"n_predict\":16,\"n_keep\":0,\"n_discard\":0,\"ignore_eos\":false,"
    "\"stream\":false,\"logit_bias\":[],\"n_probs\":0,\"min_keep\":0,\"grammar\":\"\","
    "\"grammar_lazy\":false,\"grammar_triggers\":[],\"preserved_tokens\":[],"
    "\"chat_format\":\"peg-native\",\"reasoning_format\":\"deepseek\","
    "\"reasoning_in_content\":false,\"generation_prompt\":\"\",\"samplers\":[\"penalties\","
    "\"dry\",\"top_n_sigma\",\"top_k\",\"typ_p\",\"top_p\",\"min_p\",\"xtc\",\"temperature\"],"
    "\"speculative.types\":\"none\",\"timings_per_token\":false,\"post_sampling_probs\":false,"
    "\"backend_sampling\":false,\"lora\":[]}";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fake-llama [--host 127.0.0.1] [--port N] [--port-file PATH] [--alias NAME]\n"
            "                  [--model PATH] [--load-ms N] [--fail-load] [--crash-after-ms N]\n"
            "                  [--crash-on-request] [--build new|old] [--n-ctx N] [--parallel N]\n"
            "                  [--token-ms N] [--n-predict N] [--api-key KEY] [--quiet]\n"
            "                  [--ignore-sigterm]\n"
            "       fake-llama --dump-vocab   (prints the vocabulary as JSON and exits)\n");
}

static int parse_int_arg(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < -1 || v > 1000000000)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        struct { const char *name; int *dst; } ints[] = {
            { "--port", &opt.port },          { "--load-ms", &opt.load_ms },
            { "--crash-after-ms", &opt.crash_after_ms }, { "--n-ctx", &opt.n_ctx },
            { "--parallel", &opt.parallel },  { "--token-ms", &opt.token_ms },
            { "--n-predict", &opt.n_predict },
        };
        struct { const char *name; const char **dst; } strs[] = {
            { "--host", &opt.host },   { "--port-file", &opt.port_file },
            { "--alias", &opt.alias }, { "--model", &opt.model },
            { "--api-key", &opt.api_key },
        };
        int done = 0;

        if (strcmp(a, "--fail-load") == 0) {
            opt.fail_load = 1;
            continue;
        }
        if (strcmp(a, "--ignore-sigterm") == 0) {
            opt.ignore_sigterm = 1;
            continue;
        }
        if (strcmp(a, "--crash-on-request") == 0) {
            opt.crash_on_request = 1;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            opt.quiet = 1;
            continue;
        }
        if (strcmp(a, "--dump-vocab") == 0) {
            opt.dump_vocab = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (!val) {
            fprintf(stderr, "fake-llama: bad or incomplete option '%s'\n", a);
            return -1;
        }
        if (strcmp(a, "--build") == 0) {
            if (strcmp(val, "old") == 0)
                opt.old = 1;
            else if (strcmp(val, "new") == 0)
                opt.old = 0;
            else
                return -1;
            i++;
            continue;
        }
        for (size_t k = 0; k < sizeof(ints) / sizeof(ints[0]) && !done; k++) {
            if (strcmp(a, ints[k].name) == 0) {
                if (parse_int_arg(val, ints[k].dst) < 0) {
                    fprintf(stderr, "fake-llama: bad value for %s: '%s'\n", a, val);
                    return -1;
                }
                done = 1;
            }
        }
        for (size_t k = 0; k < sizeof(strs) / sizeof(strs[0]) && !done; k++) {
            if (strcmp(a, strs[k].name) == 0) {
                *strs[k].dst = val;
                done = 1;
            }
        }
        if (!done) {
            fprintf(stderr, "fake-llama: unknown option '%s'\n", a);
            return -1;
        }
        i++;
    }
    if (opt.parallel < 1)
        opt.parallel = 1;
    if (opt.parallel > FL_MAX_SLOTS)
        opt.parallel = FL_MAX_SLOTS;
    if (opt.n_ctx < 8)
        opt.n_ctx = 8;
    if (opt.port < 0 || opt.port > 65535)
        return -1;
    return 0;
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* Waits up to ms (-1 = forever) for SIGTERM/SIGINT; returns 1 if one arrived. With
 * --ignore-sigterm a signal is logged and ignored, like llama-server b10587 hanging in
 * its shutdown (only SIGKILL ends the process then). */
static int wait_signal(const sigset_t *set, int ms)
{
    long long until = ms >= 0 ? fl_now_us() + (long long)ms * 1000 : -1;

    for (;;) {
        int sig;
        if (opt.ignore_sigterm) {
            if (until >= 0 && fl_now_us() >= until)
                return 0;
            ms = until < 0 ? 1000 : (int)((until - fl_now_us() + 999) / 1000);
            if (ms < 0)
                ms = 0;
            struct timespec t = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
            sig = sigtimedwait(set, NULL, &t);
            if (sig > 0)
                fprintf(stderr, "fake-llama: cleaning up before exit... (--ignore-sigterm: "
                                "signal %d ignored, hanging)\n", sig);
            continue;
        }
        if (ms < 0) {
            if (sigwait(set, &sig) == 0)
                return 1;
            continue;
        }
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
        sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0)
            return 1;
        if (errno == EAGAIN)
            return 0;
        /* EINTR: try again (the remaining time is not tracked exactly) */
    }
}

/* --dump-vocab: [{"id":..,"piece":..(special=true; byte array if not UTF-8),"eog":..,
 * "special":..}, ...] */
static int dump_vocab(void)
{
    json_t *a = json_array();

    fl_vocab_init();
    for (int id = 0; id < fl_vocab_size(); id++) {
        size_t l;
        const char *p = fl_tok_piece(id, 1, &l);
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(id));
        if (fl_utf8_valid(p, l, 0)) {
            json_object_set_new(o, "piece", json_stringn(p, l));
        } else {
            json_t *bytes = json_array();
            for (size_t k = 0; k < l; k++)
                json_array_append_new(bytes, json_integer((unsigned char)p[k]));
            json_object_set_new(o, "piece", bytes);
        }
        json_object_set_new(o, "special", json_boolean(fl_tok_is_special(id)));
        json_object_set_new(o, "eog", json_boolean(fl_tok_is_eog(id)));
        json_array_append_new(a, o);
    }
    char *s = fl_json_dumps(a, NULL);
    puts(s);
    free(s);
    json_decref(a);
    fl_vocab_free();
    return 0;
}

int main(int argc, char **argv)
{
    sigset_t set;
    struct sockaddr_in addr;
    struct MHD_Daemon *d;
    json_error_t je;
    int rc = 0;

    if (parse_args(argc, argv) < 0) {
        usage(stderr);
        return 2;
    }
    if (opt.dump_vocab)
        return dump_vocab();
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    {
        /* load tests open many connections: use the whole hard limit */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)opt.port);
    if (strcmp(opt.host, "localhost") == 0)
        opt.host = "127.0.0.1";
    if (inet_pton(AF_INET, opt.host, &addr.sin_addr) != 1) {
        fprintf(stderr, "fake-llama: --host must be an IPv4 address: '%s'\n", opt.host);
        return 2;
    }
    if (pipe2(g_shutdown_pipe, O_CLOEXEC) != 0) {
        perror("fake-llama: pipe");
        return 1;
    }
    fl_vocab_init();
    fl_log_init();
    fl_slots_init(opt.parallel, opt.n_ctx, g_shutdown_pipe[0]);
    g_gen_settings = json_loads(gen_settings_template, 0, &je);
    if (!g_gen_settings) {
        fprintf(stderr, "fake-llama: internal error: %s\n", je.text);
        return 1;
    }

    /* One thread per connection so handlers and readers may block; poll() rather than
     * select() so that fds above FD_SETSIZE work under load; small stacks so that a few
     * thousand concurrent streams fit. */
    d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                             MHD_USE_POLL | MHD_USE_SUPPRESS_DATE_NO_CLOCK,
                         0, NULL, NULL, on_request, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)0,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned int)8192,
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024,
                         MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024),
                         MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1,
                         MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "fake-llama: cannot listen on %s:%d\n", opt.host, opt.port);
        rc = 1;
        goto out;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int port = di ? di->port : opt.port;
    if (opt.port_file && write_port_file(opt.port_file, port) != 0) {
        fprintf(stderr, "fake-llama: cannot write port file '%s'\n", opt.port_file);
        rc = 1;
        goto stop;
    }
    /* without a load time the model is ready before anyone can know the port: a client
     * that connects right after the listening line must not see 503 Loading model */
    if (opt.load_ms <= 0 && !opt.fail_load)
        g_ready = 1;
    printf("fake-llama listening on %s:%d\n", opt.host, port);
    fflush(stdout);
    if (!opt.quiet)
        fprintf(stderr, "fake-llama: loading model '%s' (%d ms), build %s, n_vocab %d\n",
                opt.model, opt.load_ms, fingerprint(), fl_vocab_size());

    if (opt.load_ms > 0 && wait_signal(&set, opt.load_ms))
        goto stop;
    if (opt.fail_load) {
        fprintf(stderr, "fake-llama: error: failed to load model '%s'\n", opt.model);
        rc = 1;
        goto stop;
    }
    g_ready = 1;
    if (!opt.quiet)
        fprintf(stderr, "fake-llama: model loaded, ready\n");
    if (opt.crash_after_ms >= 0 && !wait_signal(&set, opt.crash_after_ms)) {
        fprintf(stderr, "fake-llama: --crash-after-ms reached, aborting\n");
        abort();
    }
    wait_signal(&set, -1);
    if (!opt.quiet)
        fprintf(stderr, "fake-llama: cleaning up before exit...\n");

stop: {
        char c = 'x';
        ssize_t n = write(g_shutdown_pipe[1], &c, 1);
        (void)n;
        MHD_stop_daemon(d);
    }
out:
    json_decref(g_gen_settings);
    fl_log_free();
    fl_slots_free();
    fl_vocab_free();
    close(g_shutdown_pipe[0]);
    close(g_shutdown_pipe[1]);
    return rc;
}
