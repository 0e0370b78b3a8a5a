/*
 * sse_backend.c - a minimal, fast llama-server stand-in for benchmarks.
 *
 * It owns one listening socket on 127.0.0.1 and answers just enough of llama-server for the
 * gateway and for bench/loadgen:
 *
 *   GET  /health               200 {"status":"ok"}
 *   GET  /v1/models            a one-model list
 *   GET  /bench/stats          counters of this process (accepted, open, requests, events)
 *   POST /v1/chat/completions  "stream":false -> a fixed ~600-byte chat.completion body;
 *                              "stream":true  -> text/event-stream, chunked, one chat.completion
 *                              .chunk per event carrying "t":<CLOCK_MONOTONIC microseconds taken
 *                              right before the write>, then data: [DONE].
 *
 * Streaming is shaped by fields of the request body (any position, any whitespace):
 *   bench_events (50)       number of events carrying "t"; the last one has finish_reason "stop"
 *   bench_interval_ms (20)  spacing, scheduled on absolute times so lateness does not accumulate
 *   bench_silent_ms (0)     silence before the first event
 *   bench_hold_headers (0)  1: also hold the response headers during the silence
 *
 * Design: one thread, level-triggered epoll, a timerfd armed (absolute, CLOCK_MONOTONIC) to the
 * earliest due stream of a binary min-heap. No allocation on the per-event path unless a socket
 * is backpressured. Epoll tags are fd | generation << 32 so that an event for a connection
 * closed earlier in the same epoll batch (and possibly replaced by a new one on the same fd) is
 * recognised and dropped. Keep-alive and pipelined requests are supported; request bodies may
 * come with Content-Length or chunked, with or without Expect: 100-continue.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define BE_MAX_HEAD     (64u * 1024)       /* request line + headers */
#define BE_MAX_REQUEST  (1u * 1024 * 1024) /* head + body of one request */
#define BE_MAX_OUT      (8u * 1024 * 1024) /* unsent output of one connection */
#define BE_READ_SIZE    16384
#define BE_MAX_EVENTS   10000000L
#define BE_EPOLL_BATCH  256

#define BE_MODEL        "models/bench.gguf"

/* ---------------------------------------------------------------------------------------- */
/* Types and globals                                                                        */
/* ---------------------------------------------------------------------------------------- */

typedef struct conn {
    int fd;
    uint32_t gen;
    char *in;             /* received bytes not yet consumed by a complete request */
    size_t in_len, in_cap;
    char *out;            /* output the socket did not take yet */
    size_t out_off, out_len, out_cap;
    int want_out;         /* EPOLLOUT is armed */
    int close_after;      /* the request being handled asked for (or forces) a close */
    int closing;          /* a final response is queued: close once it is written */
    int sent_continue;    /* 100 Continue already sent for the request being received */
    /* The stream in progress (streaming == 1) */
    int streaming;
    int headers_sent;
    long ev_total, ev_sent;
    int64_t first_us;     /* due time of event 0 */
    int64_t interval_us;
    int64_t due_us;       /* next due time; the heap key */
    size_t heap_idx;      /* position in the heap, SIZE_MAX when not in it */
} conn_t;

typedef struct stats {
    unsigned long long accepted, open, requests, streams_started, streams_done, events, errors;
} stats_t;

static int g_epfd = -1, g_lfd = -1, g_tfd = -1;
static conn_t **g_conns;      /* indexed by fd */
static size_t g_nconns;       /* capacity of g_conns */
static uint32_t g_gen;
static conn_t **g_heap;
static size_t g_heap_len, g_heap_cap;
static int64_t g_armed_us = -1; /* absolute expiry the timerfd is armed to, -1 if disarmed */
static stats_t g_st;
static volatile sig_atomic_t g_stop;

static const char CHAT_BODY[] =
    "{\"choices\":[{\"finish_reason\":\"length\",\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\" facesmerge view COMazz peak solar\"}}],\"created\":1795919496,\"model\":\""
    BE_MODEL "\",\"system_fingerprint\":\"b10587-3f545becc\",\"object\":\"chat.completion\","
    "\"usage\":{\"completion_tokens\":8,\"prompt_tokens\":6,\"total_tokens\":14,"
    "\"prompt_tokens_details\":{\"cached_tokens\":0}},\"id\":\"chatcmpl-B0hgwDhpu5BkdPgGVPtbebWFk"
    "DbRPQsa\",\"timings\":{\"cache_n\":0,\"prompt_n\":6,\"prompt_ms\":4.681,\"prompt_per_token_ms"
    "\":0.7801666666666667,\"prompt_per_second\":1281.777397991882,\"predicted_n\":8,\"predicted_"
    "ms\":2.995,\"predicted_per_token_ms\":0.4278571428571429,\"predicted_per_second\":2337.2287"
    "14524207}}";

static const char SSE_HEAD[] = "HTTP/1.1 200 OK\r\n"
                               "Server: llama.cpp\r\n"
                               "X-Accel-Buffering: no\r\n"
                               "Content-Type: text/event-stream\r\n"
                               "Transfer-Encoding: chunked\r\n"
                               "\r\n";

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "sse_backend: out of memory (%zu bytes)\n", n);
        abort();
    }
    return q;
}

/* ---------------------------------------------------------------------------------------- */
/* Timer heap: min-heap of streaming connections keyed by due_us                            */
/* ---------------------------------------------------------------------------------------- */

static void heap_swap(size_t a, size_t b)
{
    conn_t *t = g_heap[a];
    g_heap[a] = g_heap[b];
    g_heap[b] = t;
    g_heap[a]->heap_idx = a;
    g_heap[b]->heap_idx = b;
}

static void heap_up(size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (g_heap[parent]->due_us <= g_heap[i]->due_us)
            break;
        heap_swap(i, parent);
        i = parent;
    }
}

static void heap_down(size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < g_heap_len && g_heap[l]->due_us < g_heap[m]->due_us)
            m = l;
        if (r < g_heap_len && g_heap[r]->due_us < g_heap[m]->due_us)
            m = r;
        if (m == i)
            break;
        heap_swap(i, m);
        i = m;
    }
}

static void heap_push(conn_t *c)
{
    if (g_heap_len == g_heap_cap) {
        g_heap_cap = g_heap_cap ? 2 * g_heap_cap : 1024;
        g_heap = xrealloc(g_heap, g_heap_cap * sizeof(*g_heap));
    }
    c->heap_idx = g_heap_len;
    g_heap[g_heap_len++] = c;
    heap_up(c->heap_idx);
}

static void heap_remove(conn_t *c)
{
    size_t i = c->heap_idx;
    if (i == SIZE_MAX)
        return;
    c->heap_idx = SIZE_MAX;
    g_heap_len--;
    if (i == g_heap_len)
        return;
    g_heap[i] = g_heap[g_heap_len];
    g_heap[i]->heap_idx = i;
    heap_up(i);
    heap_down(g_heap[i]->heap_idx);
}

/* Arms the timerfd to the earliest due time, or disarms it when no stream waits. */
static void timer_rearm(void)
{
    int64_t due = g_heap_len ? g_heap[0]->due_us : -1;
    struct itimerspec its;

    if (due == g_armed_us)
        return;
    memset(&its, 0, sizeof(its));
    if (due >= 0) {
        if (due == 0)
            due = 1; /* it_value 0 would disarm */
        its.it_value.tv_sec = (time_t)(due / 1000000);
        its.it_value.tv_nsec = (long)(due % 1000000) * 1000;
    }
    if (timerfd_settime(g_tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
        perror("sse_backend: timerfd_settime");
        exit(1);
    }
    g_armed_us = due;
}

/* ---------------------------------------------------------------------------------------- */
/* Connections                                                                              */
/* ---------------------------------------------------------------------------------------- */

static uint64_t tag_of(const conn_t *c)
{
    return (uint64_t)(uint32_t)c->fd | ((uint64_t)c->gen << 32);
}

static void conn_set_out(conn_t *c, int on)
{
    struct epoll_event ev;
    if (c->want_out == on)
        return;
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
    ev.data.u64 = tag_of(c);
    epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

static void conn_close(conn_t *c)
{
    heap_remove(c);
    if (c->streaming)
        g_st.errors++; /* peer went away mid-stream */
    epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    g_conns[c->fd] = NULL;
    g_st.open--;
    free(c->in);
    free(c->out);
    free(c);
}

/*
 * Writes data, queueing what the socket does not take. Returns 0, or -1 after closing the
 * connection (the caller must not touch c then).
 */
static int conn_send(conn_t *c, const char *data, size_t n)
{
    if (c->out_len == c->out_off) {
        ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                conn_close(c);
                return -1;
            }
            w = 0;
        }
        data += w;
        n -= (size_t)w;
        c->out_off = c->out_len = 0;
        if (n == 0)
            return 0;
    }
    if (c->out_len - c->out_off + n > BE_MAX_OUT) {
        fprintf(stderr, "sse_backend: fd %d: output backlog over %u bytes, closing\n", c->fd,
                BE_MAX_OUT);
        g_st.errors++;
        conn_close(c);
        return -1;
    }
    if (c->out_off > 0 && c->out_len + n > c->out_cap) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_len + n > c->out_cap) {
        c->out_cap = c->out_len + n > 2 * c->out_cap ? c->out_len + n : 2 * c->out_cap;
        c->out = xrealloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
    conn_set_out(c, 1);
    return 0;
}

static int conn_process(conn_t *c);

/* EPOLLOUT: flushes queued output. Returns 0, or -1 if c was closed. */
static int conn_flush(conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            conn_close(c);
            return -1;
        }
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    conn_set_out(c, 0);
    if (!c->streaming && c->closing) {
        conn_close(c);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Request parsing                                                                          */
/* ---------------------------------------------------------------------------------------- */

/* Finds the value of "key" in a JSON body by text search: returns a pointer just past the ':'
 * and any whitespace, or NULL. Good enough for the flat bodies the bench sends. */
static const char *json_find(const char *body, size_t len, const char *key)
{
    size_t klen = strlen(key);
    const char *end = body + len, *p = body;

    while (p < end) {
        const char *q = memmem(p, (size_t)(end - p), key, klen);
        if (q == NULL)
            return NULL;
        p = q + klen;
        if (q > body && q[-1] == '"' && p < end && *p == '"') {
            p++;
            while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
                p++;
            if (p < end && *p == ':') {
                p++;
                while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
                    p++;
                return p;
            }
        }
    }
    return NULL;
}

static long json_long(const char *body, size_t len, const char *key, long dflt, long lo, long hi)
{
    const char *p = json_find(body, len, key), *end = body + len;
    long v = 0;
    int any = 0;

    if (p == NULL)
        return dflt;
    while (p < end && *p >= '0' && *p <= '9' && v < hi) {
        v = v * 10 + (*p - '0');
        p++;
        any = 1;
    }
    if (!any)
        return dflt;
    return v < lo ? lo : v > hi ? hi : v;
}

static int json_true(const char *body, size_t len, const char *key)
{
    const char *p = json_find(body, len, key);
    return p != NULL && (size_t)(body + len - p) >= 4 && memcmp(p, "true", 4) == 0;
}

/*
 * Decodes a chunked body starting at p. Returns 1 when complete (body copied to a new malloc'd
 * *out, total encoded length in *used), 0 when more bytes are needed, -1 on a framing error.
 */
static int dechunk(const char *p, size_t n, char **out, size_t *out_len, size_t *used)
{
    size_t i = 0, blen = 0;
    char *b = NULL;

    for (;;) {
        size_t sz = 0;
        int digits = 0;
        const char *lf = memchr(p + i, '\n', n - i);
        if (lf == NULL)
            goto again;
        for (; p + i < lf; i++) {
            int c = p[i], d;
            if (c >= '0' && c <= '9')
                d = c - '0';
            else if (c >= 'a' && c <= 'f')
                d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F')
                d = c - 'A' + 10;
            else
                break;
            sz = sz * 16 + (size_t)d;
            digits++;
            if (sz > BE_MAX_REQUEST)
                goto bad;
        }
        if (!digits)
            goto bad;
        i = (size_t)(lf - p) + 1;
        if (sz == 0) {
            /* trailers until an empty line */
            for (;;) {
                const char *e = memchr(p + i, '\n', n - i);
                size_t ll;
                if (e == NULL)
                    goto again;
                ll = (size_t)(e - (p + i));
                i = (size_t)(e - p) + 1;
                if (ll == 0 || (ll == 1 && e[-1] == '\r'))
                    break;
            }
            *out = b ? b : xrealloc(NULL, 1);
            *out_len = blen;
            *used = i;
            return 1;
        }
        if (n - i < sz + 2)
            goto again;
        b = xrealloc(b, blen + sz + 1);
        memcpy(b + blen, p + i, sz);
        blen += sz;
        i += sz;
        if (p[i] == '\r')
            i++;
        if (p[i] != '\n')
            goto bad;
        i++;
    }
again:
    free(b);
    return 0;
bad:
    free(b);
    return -1;
}

static int send_simple(conn_t *c, int status, const char *reason, const char *ctype,
                       const char *body, size_t blen)
{
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nServer: llama.cpp\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\n%s\r\n",
                      status, reason, ctype, blen, c->close_after ? "Connection: close\r\n" : "");
    char *msg = NULL;
    int rc;

    /* One send for head and body: two would interact with Nagle/delayed-ACK on the peer. */
    if ((size_t)hl + blen <= 4096) {
        char buf[4096];
        memcpy(buf, head, (size_t)hl);
        memcpy(buf + hl, body, blen);
        return conn_send(c, buf, (size_t)hl + blen);
    }
    msg = xrealloc(NULL, (size_t)hl + blen);
    memcpy(msg, head, (size_t)hl);
    memcpy(msg + hl, body, blen);
    rc = conn_send(c, msg, (size_t)hl + blen);
    free(msg);
    return rc;
}

static int send_json(conn_t *c, int status, const char *reason, const char *body)
{
    return send_simple(c, status, reason, "application/json; charset=utf-8", body, strlen(body));
}

/* ---------------------------------------------------------------------------------------- */
/* Streaming                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Appends one HTTP chunk holding "data: <payload>\n\n" to dst. Returns bytes written. */
static size_t put_event_chunk(char *dst, size_t cap, const char *payload, size_t plen)
{
    int hl = snprintf(dst, cap, "%zx\r\ndata: ", plen + 8);
    size_t n = (size_t)hl;
    memcpy(dst + n, payload, plen);
    n += plen;
    memcpy(dst + n, "\n\n\r\n", 4);
    return n + 4;
}

/*
 * The stream of c is due: sends its headers if not yet sent and the next event (plus [DONE] and
 * the last chunk after the last event). Returns 0, or -1 if c was closed.
 */
static int stream_tick(conn_t *c)
{
    char buf[2048], payload[512];
    size_t n = 0;
    int pl;
    int last = c->ev_sent + 1 >= c->ev_total;
    int64_t now;

    if (!c->headers_sent) {
        memcpy(buf, SSE_HEAD, sizeof(SSE_HEAD) - 1);
        n = sizeof(SSE_HEAD) - 1;
        c->headers_sent = 1;
    }
    if (c->ev_total > 0) {
        now = mono_us(); /* taken right before formatting and writing */
        pl = snprintf(payload, sizeof(payload),
                      "{\"choices\":[{\"finish_reason\":%s,\"index\":0,\"delta\":%s}],"
                      "\"created\":1,\"id\":\"chatcmpl-bench\",\"model\":\"" BE_MODEL "\","
                      "\"system_fingerprint\":\"bench\",\"object\":\"chat.completion.chunk\","
                      "\"t\":%lld}",
                      last ? "\"stop\"" : "null", last ? "{}" : "{\"content\":\" tok\"}",
                      (long long)now);
        n += put_event_chunk(buf + n, sizeof(buf) - n, payload, (size_t)pl);
        c->ev_sent++;
        g_st.events++;
    }
    if (last) {
        static const char done[] = "e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";
        memcpy(buf + n, done, sizeof(done) - 1);
        n += sizeof(done) - 1;
        c->streaming = 0;
        g_st.streams_done++;
    }
    if (conn_send(c, buf, n) != 0)
        return -1;
    if (!last) {
        c->due_us = c->first_us + c->ev_sent * c->interval_us;
        heap_push(c);
        return 0;
    }
    return conn_process(c);
}

static int start_stream(conn_t *c, const char *body, size_t blen)
{
    long events = json_long(body, blen, "bench_events", 50, 0, BE_MAX_EVENTS);
    long interval = json_long(body, blen, "bench_interval_ms", 20, 0, 3600000L);
    long silent = json_long(body, blen, "bench_silent_ms", 0, 0, 3600000L);
    long hold = json_long(body, blen, "bench_hold_headers", 0, 0, 1);
    int64_t now = mono_us();

    g_st.streams_started++;
    c->streaming = 1;
    c->headers_sent = 0;
    c->ev_total = events;
    c->ev_sent = 0;
    c->interval_us = (int64_t)interval * 1000;
    c->first_us = now + (int64_t)silent * 1000;
    c->due_us = c->first_us;
    if (silent > 0 && !hold) {
        c->headers_sent = 1;
        if (conn_send(c, SSE_HEAD, sizeof(SSE_HEAD) - 1) != 0)
            return -1;
    }
    if (c->due_us <= now)
        return stream_tick(c);
    heap_push(c);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Request dispatch                                                                         */
/* ---------------------------------------------------------------------------------------- */

static int dispatch(conn_t *c, const char *method, size_t mlen, const char *path, size_t plen,
                    const char *body, size_t blen)
{
#define IS(m, s) (mlen == sizeof(m) - 1 && memcmp(method, m, mlen) == 0 && \
                  plen == sizeof(s) - 1 && memcmp(path, s, plen) == 0)
    g_st.requests++;
    if (IS("GET", "/health"))
        return send_json(c, 200, "OK", "{\"status\":\"ok\"}");
    if (IS("GET", "/v1/models") || IS("GET", "/models"))
        return send_json(c, 200, "OK",
                         "{\"object\":\"list\",\"data\":[{\"id\":\"" BE_MODEL "\",\"object\":"
                         "\"model\",\"created\":1,\"owned_by\":\"llamacpp\"}]}");
    if (IS("GET", "/bench/stats")) {
        char js[512];
        snprintf(js, sizeof(js),
                 "{\"accepted\":%llu,\"open\":%llu,\"requests\":%llu,\"streams_started\":%llu,"
                 "\"streams_done\":%llu,\"events\":%llu,\"errors\":%llu}",
                 g_st.accepted, g_st.open, g_st.requests, g_st.streams_started,
                 g_st.streams_done, g_st.events, g_st.errors);
        return send_json(c, 200, "OK", js);
    }
    if (IS("POST", "/v1/chat/completions") || IS("POST", "/chat/completions")) {
        if (json_true(body, blen, "stream"))
            return start_stream(c, body, blen);
        return send_simple(c, 200, "OK", "application/json; charset=utf-8", CHAT_BODY,
                           sizeof(CHAT_BODY) - 1);
    }
    return send_json(c, 404, "Not Found",
                     "{\"error\":{\"code\":404,\"message\":\"File Not Found\","
                     "\"type\":\"not_found_error\"}}");
#undef IS
}

/* Answers a request that cannot be served and closes after the answer. */
static int fail(conn_t *c, int status, const char *reason)
{
    c->close_after = c->closing = 1;
    if (send_json(c, status, reason, "{}") != 0)
        return -1;
    if (c->out_len == c->out_off) {
        conn_close(c);
        return -1;
    }
    return 0;
}

static int header_is(const char *line, size_t len, const char *name, const char **val,
                     size_t *vlen)
{
    size_t nl = strlen(name);
    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return 0;
    line += nl + 1;
    len -= nl + 1;
    while (len && (*line == ' ' || *line == '\t'))
        line++, len--;
    while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
        len--;
    *val = line;
    *vlen = len;
    return 1;
}

/*
 * Processes complete requests in c->in while no stream is in progress. Returns 0, or -1 if c
 * was closed.
 */
static int conn_process(conn_t *c)
{
    while (!c->streaming && !c->closing && c->in_len > 0) {
        const char *head_end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        const char *p, *eol, *sp1, *sp2, *val;
        size_t head_len, vlen, clen = 0, used, blen = 0;
        int chunked = 0, expect = 0, has_clen = 0, rc;
        char *body = NULL;

        if (head_end == NULL) {
            if (c->in_len > BE_MAX_HEAD) {
                return fail(c, 431, "Request Header Fields Too Large");
            }
            return 0;
        }
        head_len = (size_t)(head_end - c->in) + 4;
        eol = memchr(c->in, '\n', head_len);
        sp1 = memchr(c->in, ' ', (size_t)(eol - c->in));
        sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
        if (sp1 == NULL || sp2 == NULL) {
            return fail(c, 400, "Bad Request");
        }
        if (memmem(sp2, (size_t)(eol - sp2), "HTTP/1.0", 8) != NULL)
            c->close_after = 1;
        for (p = eol + 1; p < c->in + head_len - 2; p = eol + 1) {
            size_t ll;
            eol = memchr(p, '\n', (size_t)(c->in + head_len - p));
            ll = (size_t)(eol - p);
            if (header_is(p, ll, "content-length", &val, &vlen)) {
                clen = strtoul(val, NULL, 10);
                has_clen = 1;
            } else if (header_is(p, ll, "transfer-encoding", &val, &vlen)) {
                chunked = vlen >= 7 && strncasecmp(val + vlen - 7, "chunked", 7) == 0;
            } else if (header_is(p, ll, "expect", &val, &vlen)) {
                expect = vlen == 12 && strncasecmp(val, "100-continue", 12) == 0;
            } else if (header_is(p, ll, "connection", &val, &vlen)) {
                if (vlen == 5 && strncasecmp(val, "close", 5) == 0)
                    c->close_after = 1;
                else if (vlen == 10 && strncasecmp(val, "keep-alive", 10) == 0)
                    c->close_after = 0;
            }
        }
        if (chunked) {
            rc = dechunk(c->in + head_len, c->in_len - head_len, &body, &blen, &used);
            if (rc < 0)
                return fail(c, 400, "Bad Request");
        } else {
            if (has_clen && clen > BE_MAX_REQUEST)
                return fail(c, 413, "Payload Too Large");
            rc = c->in_len - head_len >= clen;
            used = clen;
            blen = clen;
        }
        if (rc == 0) {
            if (expect && !c->sent_continue) {
                c->sent_continue = 1;
                if (conn_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 0)
                    return -1;
            }
            if (c->in_len > BE_MAX_REQUEST)
                return fail(c, 413, "Payload Too Large");
            return 0;
        }
        c->sent_continue = 0;
        {
            /* Copy what dispatch needs: consuming the input moves c->in. */
            char mbuf[16], pbuf[256];
            size_t mlen = (size_t)(sp1 - c->in), plen = (size_t)(sp2 - sp1 - 1);
            const char *bp;
            if (mlen >= sizeof(mbuf) || plen >= sizeof(pbuf)) {
                free(body);
                return fail(c, 400, "Bad Request");
            }
            memcpy(mbuf, c->in, mlen);
            memcpy(pbuf, sp1 + 1, plen);
            if (body == NULL && blen > 0) {
                body = xrealloc(NULL, blen);
                memcpy(body, c->in + head_len, blen);
            }
            bp = body ? body : "";
            c->in_len -= head_len + used;
            memmove(c->in, c->in + head_len + used, c->in_len);
            if (c->close_after)
                c->closing = 1;
            rc = dispatch(c, mbuf, mlen, pbuf, plen, bp, blen);
            free(body);
            if (rc != 0)
                return -1;
        }
    }
    if (c->closing && !c->streaming && c->out_len == c->out_off) {
        conn_close(c);
        return -1;
    }
    return 0;
}

/* EPOLLIN: reads once (level-triggered) and processes. Returns 0, or -1 if c was closed. */
static int conn_read(conn_t *c)
{
    ssize_t r;

    if (c->in_cap - c->in_len < BE_READ_SIZE) {
        if (c->in_cap >= BE_MAX_REQUEST + BE_READ_SIZE) {
            /* a stream is running and the peer keeps sending: not something the bench does */
            g_st.errors++;
            conn_close(c);
            return -1;
        }
        c->in_cap = c->in_cap ? 2 * c->in_cap : BE_READ_SIZE * 2;
        c->in = xrealloc(c->in, c->in_cap);
    }
    r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_close(c);
        return -1;
    }
    if (r < 0)
        return 0;
    c->in_len += (size_t)r;
    if (c->closing)
        return 0; /* ignore input after a request that asked to close */
    return conn_process(c);
}

static void do_accept(void)
{
    for (;;) {
        int one = 1, fd = accept4(g_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct epoll_event ev;
        conn_t *c;

        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                perror("sse_backend: accept4");
            return;
        }
        if ((size_t)fd >= g_nconns) {
            size_t n = g_nconns;
            while ((size_t)fd >= n)
                n *= 2;
            g_conns = xrealloc(g_conns, n * sizeof(*g_conns));
            memset(g_conns + g_nconns, 0, (n - g_nconns) * sizeof(*g_conns));
            g_nconns = n;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = xrealloc(NULL, sizeof(*c));
        memset(c, 0, sizeof(*c));
        c->fd = fd;
        c->gen = ++g_gen;
        c->heap_idx = SIZE_MAX;
        g_conns[fd] = c;
        ev.events = EPOLLIN;
        ev.data.u64 = tag_of(c);
        if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            perror("sse_backend: epoll_ctl");
            g_conns[fd] = NULL;
            close(fd);
            free(c);
            continue;
        }
        g_st.accepted++;
        g_st.open++;
    }
}

static void on_timer(void)
{
    uint64_t exp;
    int64_t now;

    if (read(g_tfd, &exp, sizeof(exp)) < 0 && errno != EAGAIN)
        perror("sse_backend: timerfd read");
    g_armed_us = -1; /* a fired absolute timer stays expired: force a re-arm */
    now = mono_us();
    while (g_heap_len > 0 && g_heap[0]->due_us <= now) {
        conn_t *c = g_heap[0];
        heap_remove(c);
        stream_tick(c); /* may close c; it is out of the heap either way */
        now = mono_us();
    }
    timer_rearm();
}

/* ---------------------------------------------------------------------------------------- */
/* Main                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: sse_backend [--host 127.0.0.1] [--port N (0 = any free)] "
                    "[--backlog N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 0, backlog = 4096;
    struct sockaddr_in sa;
    socklen_t slen = sizeof(sa);
    struct rlimit rl;
    struct sigaction sig;
    struct epoll_event ev, evs[BE_EPOLL_BATCH];
    int one = 1, i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--backlog") == 0 && i + 1 < argc)
            backlog = strtol(argv[++i], NULL, 10);
        else
            usage();
    }
    if (port < 0 || port > 65535 || backlog < 1)
        usage();

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    memset(&sig, 0, sizeof(sig));
    sig.sa_handler = on_signal;
    sigaction(SIGINT, &sig, NULL);
    sigaction(SIGTERM, &sig, NULL);
    signal(SIGPIPE, SIG_IGN);

    g_nconns = 1024;
    g_conns = xrealloc(NULL, g_nconns * sizeof(*g_conns));
    memset(g_conns, 0, g_nconns * sizeof(*g_conns));

    g_lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(g_lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "sse_backend: bad host %s\n", host);
        return 2;
    }
    if (bind(g_lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(g_lfd, (int)backlog) != 0) {
        perror("sse_backend: bind/listen");
        return 1;
    }
    getsockname(g_lfd, (struct sockaddr *)&sa, &slen);

    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    g_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (g_epfd < 0 || g_tfd < 0) {
        perror("sse_backend: epoll/timerfd");
        return 1;
    }
    ev.events = EPOLLIN;
    ev.data.u64 = (uint64_t)(uint32_t)g_lfd;
    epoll_ctl(g_epfd, EPOLL_CTL_ADD, g_lfd, &ev);
    ev.data.u64 = (uint64_t)(uint32_t)g_tfd;
    epoll_ctl(g_epfd, EPOLL_CTL_ADD, g_tfd, &ev);

    printf("listening on %s:%u\n", host, (unsigned)ntohs(sa.sin_port));
    fflush(stdout);

    while (!g_stop) {
        int n = epoll_wait(g_epfd, evs, BE_EPOLL_BATCH, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("sse_backend: epoll_wait");
            return 1;
        }
        for (i = 0; i < n; i++) {
            int fd = (int)(uint32_t)evs[i].data.u64;
            uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
            conn_t *c;

            if (fd == g_lfd) {
                do_accept();
                continue;
            }
            if (fd == g_tfd) {
                on_timer();
                continue;
            }
            c = (size_t)fd < g_nconns ? g_conns[fd] : NULL;
            if (c == NULL || c->gen != gen)
                continue; /* closed earlier in this batch */
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
                if (conn_flush(c) != 0)
                    continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                conn_read(c);
        }
        timer_rearm(); /* streams may have been added or removed */
    }
    fprintf(stderr,
            "sse_backend: accepted=%llu requests=%llu streams=%llu/%llu events=%llu "
            "errors=%llu\n",
            g_st.accepted, g_st.requests, g_st.streams_done, g_st.streams_started, g_st.events,
            g_st.errors);
    return 0;
}
