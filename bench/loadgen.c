/*
 * loadgen.c - an epoll HTTP/1.1 load client for bench/run.sh.
 *
 * One thread, level-triggered epoll, no libcurl: the client's own cost is small and exactly the
 * same whether it talks to the gateway or straight to the backend, which is what a same-run
 * comparison needs. Every phase prints one line of JSON on stdout; diagnostics go to stderr.
 *
 *   loadgen rps  --port P [--conns C] [--duration-ms D] [--warmup-ms W] [--model M] [--label L]
 *       C keep-alive connections, closed loop (send, read the whole reply, send again) on
 *       POST /v1/chat/completions with a ~200-byte non-streaming body. Latency is measured from
 *       just before the request's send() to the read that completes the reply; replies that
 *       complete inside the window [W, W+D) after the start are counted and recorded.
 *
 *   loadgen sse  --port P [--streams N] [--events E] [--interval-ms I] [--silent-ms S]
 *                [--hold-headers] [--spread-ms X] [--timeout-ms T] [--model M] [--label L]
 *       N concurrent streams, one connection each, started evenly over X ms (default I) so that
 *       events are not all due in the same millisecond. Each reply is decoded (chunked framing,
 *       then SSE lines) and every event's "t" (the backend's CLOCK_MONOTONIC microseconds taken
 *       right before its write) is subtracted from the arrival time (CLOCK_MONOTONIC taken right
 *       after the read that completed the event). A stream is OK only with status 200, exactly E
 *       events with "t", a final data: [DONE] and a complete body.
 *
 *   loadgen port
 *       Prints a TCP port that was free on 127.0.0.1 a moment ago.
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
#include <sys/time.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LG_MAX_HEAD    (16u * 1024)       /* status line + headers of one reply */
#define LG_MAX_LINE    (1u * 1024 * 1024) /* one SSE line */
#define LG_READ_SIZE   (64u * 1024)
#define LG_EPOLL_BATCH 512
#define LG_MAX_CONNS   100000

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                            */
/* ---------------------------------------------------------------------------------------- */

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
        fprintf(stderr, "loadgen: out of memory (%zu bytes)\n", n);
        abort();
    }
    return q;
}

/* A growable array of microsecond samples. */
typedef struct samples {
    uint32_t *v;
    size_t len, cap;
} samples_t;

static void samples_add(samples_t *s, int64_t us)
{
    if (s->len == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 4096;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->len++] = us < 0 ? 0u : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples; 0 when empty. */
static uint32_t pct(const samples_t *s, double p)
{
    size_t k;
    if (s->len == 0)
        return 0;
    k = (size_t)(p * (double)s->len + 0.999999);
    if (k < 1)
        k = 1;
    if (k > s->len)
        k = s->len;
    return s->v[k - 1];
}

static double mean(const samples_t *s)
{
    double sum = 0;
    size_t i;
    for (i = 0; i < s->len; i++)
        sum += s->v[i];
    return s->len ? sum / (double)s->len : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* HTTP/1.1 response parser: incremental, fed with bytes, no I/O                            */
/* ---------------------------------------------------------------------------------------- */

typedef enum {
    RP_HEAD,       /* collecting status line + headers until CRLFCRLF; then a body state */
    RP_BODY_LEN,   /* reading `left` bytes of a Content-Length body; then RP_DONE */
    RP_BODY_EOF,   /* no length, not chunked: body runs until the server closes */
    RP_CHUNK_SIZE, /* hex digits of a chunk-size line; ';' -> RP_CHUNK_EXT, LF -> data/trailer */
    RP_CHUNK_EXT,  /* skipping a chunk extension until LF */
    RP_CHUNK_DATA, /* `left` bytes of chunk data; then RP_CHUNK_END */
    RP_CHUNK_END,  /* the CRLF after chunk data; LF -> RP_CHUNK_SIZE */
    RP_TRAILER,    /* trailer lines until an empty line; then RP_DONE */
    RP_DONE,       /* a whole response has been read */
} rp_state_t;

typedef void (*rp_body_cb)(void *ctx, const char *p, size_t n);

typedef struct rp {
    rp_state_t st;
    char *head; /* LG_MAX_HEAD bytes, allocated on first use */
    size_t head_len;
    int status;
    int chunked;
    int conn_close;
    int digits;
    int line_len; /* RP_TRAILER: bytes on the current line, CR excluded */
    uint64_t left;
} rp_t;

enum { RP_AGAIN = 0, RP_COMPLETE = 1, RP_ERROR = -1 };

static void rp_reset(rp_t *rp)
{
    char *head = rp->head;
    memset(rp, 0, sizeof(*rp));
    rp->head = head;
    rp->st = RP_HEAD;
}

static int hdr_is(const char *line, size_t len, const char *name, const char **val, size_t *vlen)
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

/* Parses the collected head. Returns 0 or -1. */
static int rp_parse_head(rp_t *rp)
{
    const char *p = rp->head, *end = rp->head + rp->head_len, *eol, *val;
    size_t vlen;
    int has_len = 0;

    if (rp->head_len < 12 || memcmp(p, "HTTP/1.", 7) != 0)
        return -1;
    rp->status = atoi(p + 9);
    if (p[7] == '0')
        rp->conn_close = 1;
    eol = memchr(p, '\n', rp->head_len);
    for (p = eol + 1; p < end - 2; p = eol + 1) {
        size_t ll;
        eol = memchr(p, '\n', (size_t)(end - p));
        ll = (size_t)(eol - p);
        if (hdr_is(p, ll, "content-length", &val, &vlen)) {
            rp->left = strtoull(val, NULL, 10);
            has_len = 1;
        } else if (hdr_is(p, ll, "transfer-encoding", &val, &vlen)) {
            rp->chunked = vlen >= 7 && strncasecmp(val + vlen - 7, "chunked", 7) == 0;
        } else if (hdr_is(p, ll, "connection", &val, &vlen)) {
            if (vlen == 5 && strncasecmp(val, "close", 5) == 0)
                rp->conn_close = 1;
            else if (vlen == 10 && strncasecmp(val, "keep-alive", 10) == 0)
                rp->conn_close = 0;
        }
    }
    if (rp->status / 100 == 1) {
        /* 100 Continue and friends: drop and read the real head */
        rp_reset(rp);
        return 0;
    }
    if (rp->chunked)
        rp->st = RP_CHUNK_SIZE;
    else if (has_len)
        rp->st = rp->left ? RP_BODY_LEN : RP_DONE;
    else if (rp->status == 204 || rp->status == 304)
        rp->st = RP_DONE;
    else {
        rp->st = RP_BODY_EOF;
        rp->conn_close = 1;
    }
    return 0;
}

/*
 * Feeds n bytes. Body bytes go to on_body. Returns RP_COMPLETE with *used = bytes consumed
 * when a response ends inside the buffer, RP_AGAIN when all bytes were consumed and more are
 * needed, RP_ERROR on a protocol error.
 */
static int rp_feed(rp_t *rp, const char *p, size_t n, size_t *used, rp_body_cb on_body, void *ctx)
{
    size_t i = 0;

    while (i < n) {
        switch (rp->st) {
        case RP_HEAD: {
            size_t take = n - i, from;
            const char *hit;
            if (rp->head == NULL)
                rp->head = xrealloc(NULL, LG_MAX_HEAD);
            if (take > LG_MAX_HEAD - rp->head_len)
                take = LG_MAX_HEAD - rp->head_len;
            if (take == 0)
                return RP_ERROR;
            from = rp->head_len > 3 ? rp->head_len - 3 : 0;
            memcpy(rp->head + rp->head_len, p + i, take);
            hit = memmem(rp->head + from, rp->head_len + take - from, "\r\n\r\n", 4);
            if (hit == NULL) {
                rp->head_len += take;
                i += take;
                break;
            }
            take = (size_t)(hit + 4 - rp->head) - rp->head_len;
            rp->head_len += take;
            i += take;
            if (rp_parse_head(rp) != 0)
                return RP_ERROR;
            break;
        }
        case RP_BODY_LEN: {
            size_t take = n - i;
            if (take > rp->left)
                take = (size_t)rp->left;
            on_body(ctx, p + i, take);
            i += take;
            rp->left -= take;
            if (rp->left == 0)
                rp->st = RP_DONE;
            break;
        }
        case RP_BODY_EOF:
            on_body(ctx, p + i, n - i);
            i = n;
            break;
        case RP_CHUNK_SIZE: {
            char c = p[i++];
            int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
            if (d >= 0) {
                if (rp->left > (UINT64_MAX >> 4))
                    return RP_ERROR;
                rp->left = rp->left * 16 + (uint64_t)d;
                rp->digits++;
            } else if (c == ';' || c == ' ' || c == '\t') {
                rp->st = RP_CHUNK_EXT;
            } else if (c == '\r') {
                /* wait for the LF */
            } else if (c == '\n') {
                if (!rp->digits)
                    return RP_ERROR;
                rp->st = rp->left ? RP_CHUNK_DATA : RP_TRAILER;
                rp->line_len = 0;
            } else {
                return RP_ERROR;
            }
            break;
        }
        case RP_CHUNK_EXT:
            if (p[i++] == '\n') {
                if (!rp->digits)
                    return RP_ERROR;
                rp->st = rp->left ? RP_CHUNK_DATA : RP_TRAILER;
                rp->line_len = 0;
            }
            break;
        case RP_CHUNK_DATA: {
            size_t take = n - i;
            if (take > rp->left)
                take = (size_t)rp->left;
            on_body(ctx, p + i, take);
            i += take;
            rp->left -= take;
            if (rp->left == 0)
                rp->st = RP_CHUNK_END;
            break;
        }
        case RP_CHUNK_END: {
            char c = p[i++];
            if (c == '\n') {
                rp->st = RP_CHUNK_SIZE;
                rp->digits = 0;
                rp->left = 0;
            } else if (c != '\r') {
                return RP_ERROR;
            }
            break;
        }
        case RP_TRAILER: {
            char c = p[i++];
            if (c == '\n') {
                if (rp->line_len == 0)
                    rp->st = RP_DONE;
                rp->line_len = 0;
            } else if (c != '\r') {
                rp->line_len++;
            }
            break;
        }
        case RP_DONE:
            break;
        }
        if (rp->st == RP_DONE) {
            *used = i;
            return RP_COMPLETE;
        }
    }
    *used = i;
    return RP_AGAIN;
}

/* ---------------------------------------------------------------------------------------- */
/* Connections and run state                                                                */
/* ---------------------------------------------------------------------------------------- */

typedef enum {
    C_WAITING,    /* sse: not started yet */
    C_CONNECTING, /* nonblocking connect in progress */
    C_SENDING,    /* request partly sent */
    C_READING,    /* request sent, reading the reply */
    C_FINISHED,   /* sse: stream over (ok or failed); rps: stopped */
} cstate_t;

typedef struct lconn {
    int fd;
    uint32_t gen;
    cstate_t st;
    size_t req_off;
    int64_t t_due_us;   /* sse: scheduled start */
    int64_t t_send_us;  /* time of the request's first send() */
    int64_t t_now_us;   /* time of the read being parsed */
    rp_t rp;
    /* SSE decoding */
    char *line;
    size_t line_len, line_cap;
    int ev_has_t, ev_done, ev_data;
    int64_t ev_t;
    long events;
    int done_seen;
    int after_done; /* events after [DONE] */
    int headers_seen;
    size_t body_n; /* body bytes of the reply being read */
} lconn_t;

typedef enum { MODE_RPS, MODE_SSE } mode_t_;

static struct {
    mode_t_ mode;
    const char *host;
    int port;
    const char *label;
    const char *model;
    long conns, duration_ms, warmup_ms;
    long streams, evps, interval_ms, silent_ms, spread_ms, timeout_ms; /* evps: events/stream */
    int hold_headers;
    struct sockaddr_in sa;
    char *req;
    size_t req_len;
    int epfd;
    lconn_t *c;
    size_t nc;
    /* results */
    samples_t lat;   /* rps latency or sse per-event delay */
    samples_t ttfb;  /* sse: request send -> response head */
    unsigned long long count, errors, reconnects, events, events_no_t;
    unsigned long long resp_bytes; /* body size of the last reply in the window */
    unsigned long long ok, err_connect, err_status, err_early_close, err_events, err_no_done,
        err_protocol, err_timeout;
    int64_t win_start, win_end;
    size_t finished; /* connections in C_FINISHED */
    int err_printed;
    char first_err[200]; /* the first error, for the JSON line */
} G;

static char g_rbuf[LG_READ_SIZE];

/* Prints the first few errors to stderr. When `what` names a socket call, errno says why. */
static void note_error(const lconn_t *c, const char *what)
{
    static const char *const syscalls[] = {"socket", "connect", "send", "recv", NULL};
    const char *reason = "";
    int e = errno, i;

    for (i = 0; syscalls[i]; i++)
        if (strcmp(what, syscalls[i]) == 0)
            reason = e ? strerror(e) : "";
    if (G.err_printed == 0)
        snprintf(G.first_err, sizeof(G.first_err), "conn %ld: %s%s%s (HTTP status %d, %ld events)",
                 (long)(c - G.c), what, *reason ? ": " : "", reason, c->rp.status, c->events);
    if (G.err_printed < 5) {
        G.err_printed++;
        fprintf(stderr, "loadgen[%s]: conn %ld: %s%s%s (HTTP status %d, %ld events)\n", G.label,
                (long)(c - G.c), what, *reason ? ": " : "", reason, c->rp.status, c->events);
    }
}

static uint64_t tag_of(const lconn_t *c)
{
    return (uint64_t)(c - G.c) | ((uint64_t)c->gen << 32);
}

static void conn_epoll(lconn_t *c, int op, uint32_t events)
{
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = tag_of(c);
    if (epoll_ctl(G.epfd, op, c->fd, &ev) != 0) {
        perror("loadgen: epoll_ctl");
        exit(1);
    }
}

static void conn_drop(lconn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(G.epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->gen++;
}

static void conn_finish(lconn_t *c)
{
    conn_drop(c);
    if (c->st != C_FINISHED) {
        c->st = C_FINISHED;
        G.finished++;
    }
}

static int conn_send_req(lconn_t *c);

/* Opens a connection and (once connected) sends the request. Returns 0 or -1 on failure. */
static int conn_open(lconn_t *c)
{
    int one = 1;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        note_error(c, "socket");
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    rp_reset(&c->rp);
    c->req_off = 0;
    if (connect(c->fd, (struct sockaddr *)&G.sa, sizeof(G.sa)) == 0) {
        conn_epoll(c, EPOLL_CTL_ADD, EPOLLIN);
        c->st = C_SENDING;
        return conn_send_req(c);
    }
    if (errno != EINPROGRESS) {
        note_error(c, "connect");
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->st = C_CONNECTING;
    conn_epoll(c, EPOLL_CTL_ADD, EPOLLOUT);
    return 0;
}

/* Sends (the rest of) the request. Returns 0 or -1 on a send error. */
static int conn_send_req(lconn_t *c)
{
    if (c->req_off == 0) {
        c->t_send_us = mono_us();
        c->headers_seen = 0;
        c->body_n = 0;
    }
    while (c->req_off < G.req_len) {
        ssize_t w = send(c->fd, G.req + c->req_off, G.req_len - c->req_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (c->st != C_SENDING) {
                    c->st = C_SENDING;
                    conn_epoll(c, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
                }
                return 0;
            }
            note_error(c, "send");
            return -1;
        }
        c->req_off += (size_t)w;
    }
    if (c->st == C_SENDING)
        conn_epoll(c, EPOLL_CTL_MOD, EPOLLIN);
    c->st = C_READING;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* SSE decoding                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* A blank line ended an event: record it. */
static void sse_dispatch(lconn_t *c)
{
    if (!c->ev_data)
        return;
    if (c->done_seen)
        c->after_done++;
    if (c->ev_done) {
        c->done_seen = 1;
    } else if (c->ev_has_t) {
        c->events++;
        G.events++;
        samples_add(&G.lat, c->t_now_us - c->ev_t);
    } else {
        G.events_no_t++;
    }
    c->ev_data = c->ev_done = c->ev_has_t = 0;
}

static void sse_line(lconn_t *c, const char *l, size_t n)
{
    const char *t;

    if (n == 0) {
        sse_dispatch(c);
        return;
    }
    if (n < 5 || memcmp(l, "data:", 5) != 0)
        return; /* comment, event:, id:, retry: */
    l += 5;
    n -= 5;
    if (n && *l == ' ')
        l++, n--;
    c->ev_data = 1;
    if (n == 6 && memcmp(l, "[DONE]", 6) == 0) {
        c->ev_done = 1;
        return;
    }
    t = memmem(l, n, "\"t\":", 4);
    if (t != NULL) {
        const char *end = l + n;
        int64_t v = 0;
        int any = 0;
        for (t += 4; t < end && (*t == ' ' || *t == '\t'); t++)
            ;
        for (; t < end && *t >= '0' && *t <= '9'; t++, any = 1)
            v = v * 10 + (*t - '0');
        if (any) {
            c->ev_t = v;
            c->ev_has_t = 1;
        }
    }
}

static void on_body_sse(void *ctx, const char *p, size_t n)
{
    lconn_t *c = ctx;
    const char *end = p + n;

    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        size_t take = lf ? (size_t)(lf - p) : (size_t)(end - p);

        if (lf && c->line_len == 0) {
            /* whole line in the buffer: no copy */
            sse_line(c, p, take && p[take - 1] == '\r' ? take - 1 : take);
        } else {
            if (c->line_len + take > c->line_cap) {
                size_t cap = c->line_cap ? c->line_cap : 1024;
                while (cap < c->line_len + take)
                    cap *= 2;
                if (cap > LG_MAX_LINE)
                    cap = LG_MAX_LINE;
                if (c->line_len + take > cap)
                    take = cap - c->line_len; /* overlong line: truncated */
                c->line = xrealloc(c->line, cap);
                c->line_cap = cap;
            }
            memcpy(c->line + c->line_len, p, take);
            c->line_len += take;
            if (lf) {
                size_t ll = c->line_len;
                if (ll && c->line[ll - 1] == '\r')
                    ll--;
                sse_line(c, c->line, ll);
                c->line_len = 0;
                take = (size_t)(lf - p);
            }
        }
        p += lf ? (size_t)(lf - p) + 1 : take;
    }
}

static void on_body_rps(void *ctx, const char *p, size_t n)
{
    lconn_t *c = ctx;
    (void)p;
    c->body_n += n;
}

/* ---------------------------------------------------------------------------------------- */
/* Per-mode completion logic                                                                */
/* ---------------------------------------------------------------------------------------- */

/* rps: a connection failed; reconnect while the window is open. */
static void rps_fail(lconn_t *c, const char *what)
{
    int64_t now = mono_us();
    if (now >= G.win_start && now < G.win_end) {
        G.errors++;
        note_error(c, what);
    }
    conn_drop(c);
    if (now < G.win_end && conn_open(c) == 0) {
        G.reconnects++;
        return;
    }
    conn_finish(c);
}

static void rps_complete(lconn_t *c)
{
    int64_t now = c->t_now_us;

    if (now >= G.win_start && now < G.win_end) {
        G.resp_bytes = c->body_n;
        if (c->rp.status == 200) {
            G.count++;
            samples_add(&G.lat, now - c->t_send_us);
        } else {
            G.errors++;
            note_error(c, "HTTP status");
        }
    }
    if (now >= G.win_end) {
        conn_finish(c);
        return;
    }
    if (c->rp.conn_close) {
        conn_drop(c);
        if (conn_open(c) != 0) {
            G.errors++;
            conn_finish(c);
        } else {
            G.reconnects++;
        }
        return;
    }
    rp_reset(&c->rp);
    c->req_off = 0;
    if (conn_send_req(c) != 0)
        rps_fail(c, "send");
}

/* sse: the stream on c is over; classify it. */
static void sse_finish(lconn_t *c, unsigned long long *err_counter, const char *what)
{
    if (err_counter == NULL) {
        if (c->rp.status != 200) {
            err_counter = &G.err_status;
            what = "HTTP status";
        } else if (!c->done_seen) {
            err_counter = &G.err_no_done;
            what = "no [DONE]";
        } else if (c->events != G.evps || c->after_done) {
            err_counter = &G.err_events;
            what = "wrong number of events";
        }
    }
    if (err_counter) {
        (*err_counter)++;
        G.errors++;
        note_error(c, what);
    } else {
        G.ok++;
    }
    conn_finish(c);
    G.count++;
}

/* Reads once from c and parses. */
static void conn_readable(lconn_t *c)
{
    ssize_t r = recv(c->fd, g_rbuf, sizeof(g_rbuf), 0);
    size_t off = 0;

    c->t_now_us = mono_us();
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (r <= 0) {
        if (r == 0 && c->rp.st == RP_BODY_EOF) {
            c->rp.st = RP_DONE;
            if (G.mode == MODE_SSE) {
                sse_finish(c, NULL, NULL);
            } else {
                c->rp.conn_close = 1;
                rps_complete(c);
            }
            return;
        }
        if (G.mode == MODE_SSE)
            sse_finish(c, &G.err_early_close, r == 0 ? "closed early" : "recv");
        else
            rps_fail(c, r == 0 ? "closed early" : "recv");
        return;
    }
    while (off < (size_t)r) {
        size_t used = 0;
        int rc;
        int had_head = c->rp.st != RP_HEAD;

        rc = rp_feed(&c->rp, g_rbuf + off, (size_t)r - off, &used,
                     G.mode == MODE_SSE ? on_body_sse : on_body_rps, c);
        if (!had_head && c->rp.st != RP_HEAD && !c->headers_seen) {
            c->headers_seen = 1;
            if (G.mode == MODE_SSE)
                samples_add(&G.ttfb, c->t_now_us - c->t_send_us);
        }
        off += used;
        if (rc == RP_ERROR) {
            if (G.mode == MODE_SSE)
                sse_finish(c, &G.err_protocol, "HTTP protocol error");
            else
                rps_fail(c, "HTTP protocol error");
            return;
        }
        if (rc == RP_AGAIN)
            return;
        /* RP_COMPLETE */
        if (G.mode == MODE_SSE) {
            if (c->line_len > 0) /* an event without its final blank line */
                sse_line(c, "", 0);
            sse_finish(c, off < (size_t)r ? &G.err_protocol : NULL, "bytes after the reply");
            return;
        }
        if (off < (size_t)r) {
            rps_fail(c, "bytes after the reply");
            return;
        }
        rps_complete(c);
        return;
    }
}

static void conn_writable(lconn_t *c)
{
    if (c->st == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            errno = err;
            if (G.mode == MODE_SSE)
                sse_finish(c, &G.err_connect, "connect");
            else
                rps_fail(c, "connect");
            return;
        }
        c->st = C_SENDING;
        conn_epoll(c, EPOLL_CTL_MOD, EPOLLIN);
    }
    if (c->st == C_SENDING && conn_send_req(c) != 0) {
        if (G.mode == MODE_SSE)
            sse_finish(c, &G.err_connect, "send");
        else
            rps_fail(c, "send");
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Main loop                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void build_request(void)
{
    char body[1024];
    int bl, hl;

    if (G.mode == MODE_RPS)
        bl = snprintf(body, sizeof(body),
                      "{\"model\":\"%s\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a "
                      "helpful assistant.\"},{\"role\":\"user\",\"content\":\"Say hello to the "
                      "benchmark in one short sentence.\"}],\"max_tokens\":16,\"temperature\":0,"
                      "\"stream\":false}",
                      G.model);
    else
        bl = snprintf(body, sizeof(body),
                      "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"Stream "
                      "the benchmark, please.\"}],\"max_tokens\":%ld,\"stream\":true,"
                      "\"bench_events\":%ld,\"bench_interval_ms\":%ld,\"bench_silent_ms\":%ld,"
                      "\"bench_hold_headers\":%d}",
                      G.model, G.evps + 1, G.evps, G.interval_ms, G.silent_ms,
                      G.hold_headers);
    G.req = xrealloc(NULL, (size_t)bl + 512);
    hl = snprintf(G.req, 512,
                  "POST /v1/chat/completions HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: loadgen\r\n"
                  "Accept: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
                  G.host, G.port, G.mode == MODE_SSE ? "text/event-stream" : "application/json",
                  bl);
    memcpy(G.req + hl, body, (size_t)bl);
    G.req_len = (size_t)hl + (size_t)bl;
}

/* CPU seconds (user + system) this process has used. */
static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void print_json(int64_t t0, int64_t t1)
{
    if (G.lat.len > 1)
        qsort(G.lat.v, G.lat.len, sizeof(*G.lat.v), cmp_u32);
    if (G.ttfb.len > 1)
        qsort(G.ttfb.v, G.ttfb.len, sizeof(*G.ttfb.v), cmp_u32);
    if (G.mode == MODE_RPS) {
        double secs = (double)(G.win_end - G.win_start) / 1e6;
        printf("{\"mode\":\"rps\",\"label\":\"%s\",\"conns\":%ld,\"duration_s\":%.3f,"
               "\"count\":%llu,\"errors\":%llu,\"reconnects\":%llu,\"rps\":%.1f,"
               "\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,\"max_us\":%u,\"mean_us\":%.1f,"
               "\"reply_bytes\":%llu,\"client_cpu_s\":%.3f,\"first_error\":\"%s\"}\n",
               G.label, G.conns, secs, G.count, G.errors, G.reconnects,
               secs > 0 ? (double)G.count / secs : 0.0, pct(&G.lat, 0.50), pct(&G.lat, 0.90),
               pct(&G.lat, 0.99), pct(&G.lat, 1.0), mean(&G.lat),
               G.resp_bytes, self_cpu_s(), G.first_err);
    } else {
        printf("{\"mode\":\"sse\",\"label\":\"%s\",\"streams\":%ld,\"events_per_stream\":%ld,"
               "\"interval_ms\":%ld,\"silent_ms\":%ld,\"ok\":%llu,\"errors\":%llu,"
               "\"err_connect\":%llu,\"err_status\":%llu,\"err_early_close\":%llu,"
               "\"err_events\":%llu,\"err_no_done\":%llu,\"err_protocol\":%llu,"
               "\"err_timeout\":%llu,\"events\":%llu,\"events_expected\":%lld,"
               "\"events_without_t\":%llu,\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,"
               "\"max_us\":%u,\"mean_us\":%.1f,\"ttfb_p50_us\":%u,\"ttfb_max_us\":%u,"
               "\"elapsed_ms\":%.1f,\"client_cpu_s\":%.3f,\"first_error\":\"%s\"}\n",
               G.label, G.streams, G.evps, G.interval_ms, G.silent_ms, G.ok, G.errors,
               G.err_connect, G.err_status, G.err_early_close, G.err_events, G.err_no_done,
               G.err_protocol, G.err_timeout, G.events, (long long)G.streams * G.evps,
               G.events_no_t, pct(&G.lat, 0.50), pct(&G.lat, 0.90), pct(&G.lat, 0.99),
               pct(&G.lat, 1.0), mean(&G.lat), pct(&G.ttfb, 0.50), pct(&G.ttfb, 1.0),
               (double)(t1 - t0) / 1e3, self_cpu_s(), G.first_err);
    }
    fflush(stdout);
}

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        perror("loadgen: port");
        return 1;
    }
    printf("%u\n", (unsigned)ntohs(sa.sin_port));
    close(fd);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen rps --port P [--host H] [--conns C] [--duration-ms D] [--warmup-ms W]\n"
            "                   [--model M] [--label L]\n"
            "       loadgen sse --port P [--host H] [--streams N] [--events E] [--interval-ms I]\n"
            "                   [--silent-ms S] [--hold-headers] [--spread-ms X]\n"
            "                   [--timeout-ms T] [--model M] [--label L]\n"
            "       loadgen port\n");
    exit(2);
}

static long arg_long(const char *s, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "loadgen: bad number %s (want %ld..%ld)\n", s, lo, hi);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv)
{
    int i;

    G.host = "127.0.0.1";
    G.label = "";
    G.model = "bench";
    G.conns = 1;
    G.duration_ms = 2000;
    G.warmup_ms = 300;
    G.streams = 1;
    G.evps = 50;
    G.interval_ms = 20;
    G.spread_ms = -1;
    G.timeout_ms = -1;
    for (i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--hold-headers") == 0) {
            G.hold_headers = 1;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--host") == 0)
            G.host = v;
        else if (strcmp(a, "--port") == 0)
            G.port = (int)arg_long(v, 1, 65535);
        else if (strcmp(a, "--label") == 0)
            G.label = v;
        else if (strcmp(a, "--model") == 0)
            G.model = v;
        else if (strcmp(a, "--conns") == 0)
            G.conns = arg_long(v, 1, LG_MAX_CONNS);
        else if (strcmp(a, "--duration-ms") == 0)
            G.duration_ms = arg_long(v, 1, 3600000L);
        else if (strcmp(a, "--warmup-ms") == 0)
            G.warmup_ms = arg_long(v, 0, 3600000L);
        else if (strcmp(a, "--streams") == 0)
            G.streams = arg_long(v, 1, LG_MAX_CONNS);
        else if (strcmp(a, "--events") == 0)
            G.evps = arg_long(v, 0, 10000000L);
        else if (strcmp(a, "--interval-ms") == 0)
            G.interval_ms = arg_long(v, 0, 3600000L);
        else if (strcmp(a, "--silent-ms") == 0)
            G.silent_ms = arg_long(v, 0, 3600000L);
        else if (strcmp(a, "--spread-ms") == 0)
            G.spread_ms = arg_long(v, 0, 3600000L);
        else if (strcmp(a, "--timeout-ms") == 0)
            G.timeout_ms = arg_long(v, 1, 3600000L);
        else
            usage();
    }
    if (G.port == 0 || strlen(G.model) > 200 || strchr(G.model, '"') || strchr(G.label, '"'))
        usage();
    if (G.spread_ms < 0)
        G.spread_ms = G.interval_ms;
    if (G.timeout_ms < 0)
        G.timeout_ms = G.silent_ms + G.evps * G.interval_ms + G.spread_ms + 30000;
}

int main(int argc, char **argv)
{
    struct epoll_event evs[LG_EPOLL_BATCH];
    struct rlimit rl;
    int64_t t0, deadline, t_end;
    size_t i, started = 0;

    if (argc >= 2 && strcmp(argv[1], "port") == 0)
        return free_port();
    if (argc < 2)
        usage();
    if (strcmp(argv[1], "rps") == 0)
        G.mode = MODE_RPS;
    else if (strcmp(argv[1], "sse") == 0)
        G.mode = MODE_SSE;
    else
        usage();
    parse_args(argc, argv);

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    memset(&G.sa, 0, sizeof(G.sa));
    G.sa.sin_family = AF_INET;
    G.sa.sin_port = htons((uint16_t)G.port);
    if (inet_pton(AF_INET, G.host, &G.sa.sin_addr) != 1) {
        fprintf(stderr, "loadgen: bad host %s\n", G.host);
        return 2;
    }
    build_request();
    G.epfd = epoll_create1(EPOLL_CLOEXEC);
    G.nc = (size_t)(G.mode == MODE_RPS ? G.conns : G.streams);
    G.c = xrealloc(NULL, G.nc * sizeof(*G.c));
    memset(G.c, 0, G.nc * sizeof(*G.c));

    t0 = mono_us();
    for (i = 0; i < G.nc; i++) {
        G.c[i].fd = -1;
        G.c[i].st = C_WAITING;
        G.c[i].t_due_us = G.mode == MODE_SSE && G.nc > 1
                              ? t0 + (int64_t)((double)G.spread_ms * 1000.0 * (double)i /
                                               (double)G.nc)
                              : t0;
    }
    if (G.mode == MODE_RPS) {
        G.win_start = t0 + G.warmup_ms * 1000;
        G.win_end = G.win_start + G.duration_ms * 1000;
        deadline = G.win_end + 5000000; /* drain in-flight replies for at most 5 s */
    } else {
        deadline = t0 + G.timeout_ms * 1000;
    }

    for (;;) {
        int64_t now = mono_us(), next = deadline;
        int n, timeout_ms;

        /* start due connections (all at once for rps, spread for sse) */
        while (started < G.nc && G.c[started].t_due_us <= now) {
            lconn_t *c = &G.c[started++];
            if (conn_open(c) != 0) {
                if (G.mode == MODE_SSE)
                    sse_finish(c, &G.err_connect, "connect");
                else
                    rps_fail(c, "connect");
            }
        }
        if (started < G.nc && G.c[started].t_due_us < next)
            next = G.c[started].t_due_us;
        if (G.mode == MODE_RPS && now < G.win_end && G.win_end < next)
            next = G.win_end;

        if (G.finished == G.nc)
            break;
        if (G.mode == MODE_RPS && now >= G.win_end) {
            /* stop connections still connecting; those mid-reply finish in rps_complete */
            for (i = 0; i < G.nc; i++)
                if (G.c[i].st == C_CONNECTING)
                    conn_finish(&G.c[i]);
        }
        if (now >= deadline) {
            for (i = 0; i < G.nc; i++) {
                lconn_t *c = &G.c[i];
                if (c->st == C_FINISHED)
                    continue;
                if (G.mode == MODE_SSE) {
                    sse_finish(c, &G.err_timeout, "timeout");
                } else {
                    conn_finish(c);
                    G.errors++;
                }
            }
            break;
        }
        timeout_ms = (int)((next - now + 999) / 1000);
        if (timeout_ms > 100)
            timeout_ms = 100;
        n = epoll_wait(G.epfd, evs, LG_EPOLL_BATCH, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("loadgen: epoll_wait");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            size_t idx = (size_t)(uint32_t)evs[k].data.u64;
            uint32_t gen = (uint32_t)(evs[k].data.u64 >> 32);
            lconn_t *c;

            if (idx >= G.nc)
                continue;
            c = &G.c[idx];
            if (c->gen != gen || c->fd < 0)
                continue; /* dropped earlier in this batch */
            if (evs[k].events & EPOLLOUT) {
                conn_writable(c);
                if (c->gen != gen)
                    continue;
            }
            if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                if (c->st == C_CONNECTING)
                    conn_writable(c); /* reports the connect error */
                else
                    conn_readable(c);
            }
        }
    }
    t_end = mono_us();
    print_json(t0, t_end);
    return G.errors ? 3 : 0;
}
