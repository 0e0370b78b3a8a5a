/*
 * supervisor.c - spawned backends: start on demand, /health readiness, VRAM budget,
 * idle unload, crash handling, stop (supervisor.h).
 *
 * One thread ("the supervisor thread") owns every child. It forks them (so that
 * PR_SET_PDEATHSIG, which follows the forking *thread*, fires exactly when the gateway
 * dies: this thread ends only after every child is reaped), and it alone touches their
 * fds: a pidfd per child (readable at exit), the stdout/stderr pipes, the /health probe
 * sockets, all in one epoll set with an eventfd for wake-ups. Timers are the epoll_wait
 * timeout, computed from the deadlines of the moment, so nothing runs when nothing is
 * starting, stopping, idle with a ttl, or waiting: 0% CPU.
 *
 * State lives in gw_proc_t, under sup->mu. Other threads enter through the verbs in
 * supervisor.h (acquire, release, cancel, load, unload, info); they change lease counts
 * and wait queues and wake the thread, which does everything else in reconcile(). The
 * thread holds mu except while in epoll_wait and while running callbacks, so a callback
 * can take its owner's lock (which that owner may hold around acquire) without a cycle.
 *
 * Readiness. llama-server answers 503 on every route while it loads, so the probe is a
 * plain non-blocking "GET /health" whose status line is read and the socket closed.
 * Probes back off from 5 ms to backends.health_interval_ms; any output line from a
 * starting child brings the next probe forward (at most every HINT_GAP_MS), because
 * llama-server logs "model loaded" / "server is listening" the moment it becomes ready.
 * That keeps the gateway's share of a cold start to a few milliseconds without polling
 * hard.
 */
#include "backend/supervisor.h"

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/spawn.h"
#include "core/alloc.h"
#include "core/log.h"

extern char **environ;

#define PROBE_FIRST_MS 5        /* first gap between probes; doubles up to health_interval */
#define PROBE_TIMEOUT_MS 2000   /* one probe's connect + answer */
#define HINT_GAP_MS 10          /* output-triggered probes at most this often */
#define HINT_ECHO_MS 5          /* one line this soon after a probe's answer may be its echo */
#define LINE_MAX_BYTES 1024     /* a longer output line is logged in pieces */
#define TAIL_LINES 5            /* stderr lines kept for failure reports */
#define TAIL_LINE_BYTES 200
#define PIDFD_POLL_MS 100       /* exit polling when pidfd_open is unavailable */
#define READ_BUDGET (64 * 1024) /* bytes read per pipe event, so one child cannot starve */

/* Internal states: P_PENDING is a start waiting for VRAM (public: starting). */
enum { P_STOPPED, P_PENDING, P_STARTING, P_READY, P_FAILED, P_STOPPING };
enum { W_LEASE = 1, W_LOAD, W_UNLOAD };
enum { W_IDLE = 0, W_QUEUED, W_FIRING, W_DONE };
enum { EV_WAKE = 1, EV_PIDFD, EV_OUT, EV_ERR, EV_PROBE };
enum { PR_NONE = 0, PR_CONNECTING, PR_READING };

typedef struct linebuf {
    char buf[LINE_MAX_BYTES];
    size_t len;
} linebuf_t;

typedef struct gw_proc {
    gw_supervisor_t *sup;
    gw_model_t *m;
    const gw_model_conf_t *conf;
    size_t idx;
    int state;

    /* the process (supervisor thread; pid/port also read by info under mu) */
    gw_child_t ch;
    unsigned port;             /* the backend's port (kept across restarts) */
    char *url;                 /* its base URL, published in m->upstream */
    char **old_urls;           /* URLs replaced after a port clash: readers may hold them */
    size_t n_old_urls;
    linebuf_t out, err;
    char tail[TAIL_LINES][TAIL_LINE_BYTES];
    unsigned tail_n;           /* lines pushed so far */

    /* the /health probe */
    struct sockaddr_storage probe_sa;
    socklen_t probe_sl;
    char probe_host[64];
    unsigned probe_port;
    const char *probe_prefix;  /* path prefix of a fixed upstream, "" otherwise */
    int probe_fd, probe_phase;
    char probe_buf[32];
    size_t probe_len;
    unsigned probe_gap, n_probes;
    uint64_t next_probe, probe_deadline, last_probe, probe_answered;
    int echo_pending;          /* the backend may still log the last probe (one line) */

    /* requests */
    long leases;
    gw_sup_wait_t waiters;     /* sentinel: lease and load waiters, FIFO */
    size_t n_waiters;
    gw_sup_wait_t stop_waiters;
    int load_requested;        /* preload or admin load with no waiter left */
    uint64_t last_used;
    int ttl_armed;             /* the thread's current sleep ends at or before the ttl */

    /* timing */
    uint64_t t_want, t_spawn, t_ready, start_deadline, pending_deadline, pending_seq;
    uint64_t kill_at, t_stop, next_ping;
    int killed, stop_next, vram_logged;
    char stop_reason[160];

    /* failures */
    unsigned failures;
    uint64_t next_start_ok;
    char last_error[256];
} gw_proc_t;

struct gw_supervisor {
    const gw_conf_t *conf;
    gw_registry_t *reg;
    gw_proc_t *procs;
    size_t n;
    pthread_mutex_t mu;
    pthread_cond_t cond;         /* a callback finished (cancel waits for it) */
    pthread_t thread;
    int thread_started;
    int epfd, evfd;
    int quit;
    uint64_t pend_seq;
    gw_sup_wait_t *fire_head, *fire_tail; /* done callbacks to run, collected under mu */
    gw_sup_wait_t *tick_head;
};

/* ================================================================ helpers ===== */

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void wake(gw_supervisor_t *s)
{
    uint64_t one = 1;

    (void)!write(s->evfd, &one, sizeof(one));
}

static const char *name_of(const gw_proc_t *p)
{
    return p->conf->name;
}

static void list_init(gw_sup_wait_t *head)
{
    head->next = head->prev = head;
}

static void list_push(gw_sup_wait_t *head, gw_sup_wait_t *w)
{
    w->prev = head->prev;
    w->next = head;
    head->prev->next = w;
    head->prev = w;
}

static void list_del(gw_sup_wait_t *w)
{
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

const char *gw_proc_state_name(gw_proc_state_t s)
{
    switch (s) {
    case GW_PROC_STARTING:
        return "starting";
    case GW_PROC_READY:
        return "ready";
    case GW_PROC_FAILED:
        return "failed";
    case GW_PROC_STOPPING:
        return "stopping";
    default:
        return "stopped";
    }
}

static gw_proc_state_t public_state(int st)
{
    switch (st) {
    case P_PENDING:
    case P_STARTING:
        return GW_PROC_STARTING;
    case P_READY:
        return GW_PROC_READY;
    case P_FAILED:
        return GW_PROC_FAILED;
    case P_STOPPING:
        return GW_PROC_STOPPING;
    default:
        return GW_PROC_STOPPED;
    }
}

static int has_process(const gw_proc_t *p)
{
    return p->state == P_STARTING || p->state == P_READY || p->state == P_STOPPING;
}

/* The last stderr lines, oldest first, joined with " | " (for a failure's log line). */
static void tail_join(const gw_proc_t *p, char *out, size_t cap)
{
    unsigned n = p->tail_n < TAIL_LINES ? p->tail_n : TAIL_LINES, i;
    size_t len = 0;

    out[0] = '\0';
    for (i = 0; i < n && len + 4 < cap; i++) {
        const char *line = p->tail[(p->tail_n - n + i) % TAIL_LINES];
        int k = snprintf(out + len, cap - len, "%s%s", i ? " | " : "", line);

        if (k < 0)
            break;
        len += (size_t)k < cap - len ? (size_t)k : cap - len - 1;
    }
    if (n == 0)
        snprintf(out, cap, "(none)");
}

/* ================================================================ policy ====== */

uint64_t gw_supervisor_backoff_ms(unsigned failures, unsigned initial_ms, unsigned max_ms)
{
    uint64_t d = initial_ms;
    unsigned i;

    if (failures == 0)
        return 0;
    for (i = 1; i < failures && d < max_ms; i++)
        d *= 2;
    return d < max_ms ? d : max_ms;
}

size_t gw_supervisor_pick_victims(const gw_sup_cand_t *c, size_t n, unsigned need_mb, size_t *out)
{
    size_t k = 0, i, j;
    uint64_t sum = 0;

    if (need_mb == 0)
        return 0;
    /* idle candidates that free something, least recently used first (stable) */
    for (i = 0; i < n; i++) {
        if (!c[i].idle || c[i].vram_mb == 0)
            continue;
        for (j = k; j > 0 && c[out[j - 1]].last_used_ms > c[i].last_used_ms; j--)
            out[j] = out[j - 1];
        out[j] = i;
        k++;
    }
    for (i = 0; i < k && sum < need_mb; i++)
        sum += c[out[i]].vram_mb;
    if (sum < need_mb)
        return 0;
    k = i;
    /* newest first, drop any victim the others already cover */
    for (i = k; i-- > 0;) {
        if (sum - c[out[i]].vram_mb >= need_mb) {
            sum -= c[out[i]].vram_mb;
            memmove(&out[i], &out[i + 1], (k - i - 1) * sizeof(*out));
            k--;
        }
    }
    return k;
}

/* ================================================================ waiters ===== */

/* Moves w to the fire list with its result (mu held). */
static void fire(gw_supervisor_t *s, gw_sup_wait_t *w, gw_err_t rc, const char *msg)
{
    w->state = W_FIRING;
    w->rc = rc;
    /* a message longer than the waiter's buffer is cut (no format warning: %.*s) */
    snprintf(w->msg, sizeof(w->msg), "%.*s", (int)(sizeof(w->msg) - 1), msg ? msg : "");
    w->fire_next = NULL;
    if (s->fire_tail)
        s->fire_tail->fire_next = w;
    else
        s->fire_head = w;
    s->fire_tail = w;
}

/* Answers every lease and load waiter (mu held). A GW_OK answer takes the lease. */
static void fire_waiters(gw_proc_t *p, gw_err_t rc, const char *msg)
{
    gw_sup_wait_t *w;

    while ((w = p->waiters.next) != &p->waiters) {
        list_del(w);
        p->n_waiters--;
        if (rc == GW_OK && w->kind == W_LEASE)
            p->leases++;
        fire(p->sup, w, rc, msg);
    }
    p->next_ping = 0;
}

static void fire_stop_waiters(gw_proc_t *p, gw_err_t rc, const char *msg)
{
    gw_sup_wait_t *w;

    while ((w = p->stop_waiters.next) != &p->stop_waiters) {
        list_del(w);
        fire(p->sup, w, rc, msg);
    }
}

/* Runs the collected callbacks without mu; called with mu held, returns with it held. */
static void run_callbacks(gw_supervisor_t *s)
{
    gw_sup_wait_t *w, *next;

    while (s->tick_head || s->fire_head) {
        gw_sup_wait_t *ticks = s->tick_head, *fires = s->fire_head;

        s->tick_head = NULL;
        s->fire_head = s->fire_tail = NULL;
        pthread_mutex_unlock(&s->mu);
        for (w = ticks; w; w = w->tick_next)
            w->on_tick(w);
        for (w = fires; w; w = w->fire_next)
            w->on_done(w, w->rc, w->msg);
        pthread_mutex_lock(&s->mu);
        for (w = ticks; w; w = next) {
            next = w->tick_next;
            w->ticking = 0;
        }
        for (w = fires; w; w = next) {
            next = w->fire_next;
            w->state = W_DONE; /* the owner may free w once cancel sees this */
        }
        pthread_cond_broadcast(&s->cond);
    }
}

/* ================================================================ process ===== */

static void epoll_add(gw_supervisor_t *s, int fd, uint32_t events, size_t idx, int kind)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.u64 = ((uint64_t)idx << 8) | (uint64_t)kind;
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void probe_close(gw_proc_t *p)
{
    close_fd(&p->probe_fd);
    p->probe_phase = PR_NONE;
    p->probe_len = 0;
}

/* Logs one line of child output and keeps stderr's tail. */
static void emit_line(gw_proc_t *p, char *line, size_t len, int is_err, uint64_t now)
{
    size_t i;

    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    for (i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            line[i] = '?';
    GW_LOG(GW_LOG_INFO, "[%s] %.*s", name_of(p), (int)len, line);
    if (is_err) {
        char *t = p->tail[p->tail_n % TAIL_LINES];
        size_t n = len < TAIL_LINE_BYTES - 1 ? len : TAIL_LINE_BYTES - 1;

        memcpy(t, line, n);
        t[n] = '\0';
        p->tail_n++;
    }
    /* Output while starting often means "ready": probe soon. But the first line right
     * after a probe's answer is probably the backend logging that probe (fake-llama does;
     * llama-server b10587 does not log /health), and following it would make every probe
     * trigger the next. A ready line swallowed that way is followed by others. */
    if (p->echo_pending && now < p->probe_answered + HINT_ECHO_MS) {
        p->echo_pending = 0;
        return;
    }
    if (p->state == P_STARTING && p->probe_fd < 0) {
        uint64_t at = p->last_probe + HINT_GAP_MS > now ? p->last_probe + HINT_GAP_MS : now;

        if (at < p->next_probe)
            p->next_probe = at;
    }
}

/* Reads what the pipe has (bounded); returns 1 at EOF or error, when the fd is closed. */
static int read_output(gw_proc_t *p, int is_err, uint64_t now)
{
    int *fd = is_err ? &p->ch.err_fd : &p->ch.out_fd;
    linebuf_t *lb = is_err ? &p->err : &p->out;
    size_t budget = READ_BUDGET;

    while (*fd >= 0 && budget > 0) {
        ssize_t n = read(*fd, lb->buf + lb->len, sizeof(lb->buf) - lb->len);
        char *nl;

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0) {
            if (lb->len)
                emit_line(p, lb->buf, lb->len, is_err, now);
            lb->len = 0;
            close_fd(fd);
            return 1;
        }
        budget -= (size_t)n < budget ? (size_t)n : budget;
        lb->len += (size_t)n;
        while ((nl = memchr(lb->buf, '\n', lb->len)) != NULL) {
            size_t l = (size_t)(nl - lb->buf) + 1;

            emit_line(p, lb->buf, l, is_err, now);
            memmove(lb->buf, lb->buf + l, lb->len - l);
            lb->len -= l;
        }
        if (lb->len == sizeof(lb->buf)) {
            emit_line(p, lb->buf, lb->len, is_err, now);
            lb->len = 0;
        }
    }
    return 0;
}

static void describe_status(int status, char *out, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, cap, "ended with wait status %d", status);
}

/* Sends SIGTERM to the group and arms the SIGKILL (mu held). */
static void begin_stop(gw_proc_t *p, uint64_t now, int next_state, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void begin_stop(gw_proc_t *p, uint64_t now, int next_state, const char *fmt, ...)
{
    unsigned grace = p->sup->conf->stop_grace_ms;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p->stop_reason, sizeof(p->stop_reason), fmt, ap);
    va_end(ap);
    probe_close(p);
    p->state = P_STOPPING;
    p->stop_next = next_state;
    p->t_stop = now;
    p->kill_at = now + grace;
    p->killed = 0;
    gw_spawn_kill(p->ch.pid, grace ? SIGTERM : SIGKILL);
    p->killed = grace == 0;
    GW_LOG(GW_LOG_INFO,
           "model %s: stopping pid %ld (%s): %s to its process group, SIGKILL after %u ms",
           name_of(p), (long)p->ch.pid, p->stop_reason, grace ? "SIGTERM" : "SIGKILL", grace);
}

/* A start did not work out (mu held): fail the waiters at once, back off, stop. */
static void start_failed(gw_proc_t *p, uint64_t now, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void start_failed(gw_proc_t *p, uint64_t now, const char *fmt, ...)
{
    const gw_conf_t *conf = p->sup->conf;
    char why[256], tail[TAIL_LINES * (TAIL_LINE_BYTES + 3) + 8], msg[320];
    uint64_t delay;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    p->failures++;
    delay = gw_supervisor_backoff_ms(p->failures, conf->backoff_ms, conf->backoff_max_ms);
    p->next_start_ok = now + delay;
    snprintf(p->last_error, sizeof(p->last_error), "%s", why);
    tail_join(p, tail, sizeof(tail));
    GW_LOG(GW_LOG_ERROR,
           "model %s failed to start (failure %u in a row): %s; last stderr lines: %s; next "
           "start allowed in %llu ms",
           name_of(p), p->failures, why, tail, (unsigned long long)delay);
    snprintf(msg, sizeof(msg), "model '%s' failed to start: %s (details in the gateway log)",
             name_of(p), why);
    fire_waiters(p, GW_EBUSY, msg);
    p->load_requested = 0;
    if (p->state == P_STARTING && p->ch.pid > 0)
        begin_stop(p, now, P_FAILED, "start failed");
    else
        p->state = P_FAILED;
}

/* A free loopback port that no other model uses; 0 or -1. */
static int pick_port(gw_supervisor_t *s, unsigned *port)
{
    int tries;
    size_t i;

    for (tries = 0; tries < 16; tries++) {
        int clash = 0;

        if (gw_spawn_free_port(port) != 0)
            return -1;
        for (i = 0; i < s->n; i++)
            if (s->procs[i].conf->uses_port && s->procs[i].port == *port)
                clash = 1;
        if (!clash)
            return 0;
    }
    return -1;
}

/* A ${PORT} model's port and URL; publishes the URL (the old string is the caller's). */
static void set_port(gw_proc_t *p, unsigned port)
{
    char url[48];

    snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
    p->port = port;
    p->url = gw_xstrdup(url);
    p->probe_port = port;
    snprintf(p->probe_host, sizeof(p->probe_host), "127.0.0.1");
    atomic_store(&p->m->upstream, p->url);
}

/* Checks the port (if ${PORT}), builds argv and envp, forks (mu held). */
static void spawn_proc(gw_proc_t *p, uint64_t now)
{
    gw_supervisor_t *s = p->sup;
    const gw_model_conf_t *mc = p->conf;
    char **argv = gw_xcalloc(mc->n_command + 1, sizeof(char *));
    char **vals = gw_xcalloc(mc->n_env + 1, sizeof(char *));
    char **envp = NULL, *path = NULL, cmdline[600];
    unsigned port = 0;
    gw_errbuf_t err;
    size_t i, len = 0;

    p->tail_n = 0;
    p->out.len = p->err.len = 0;
    if (mc->uses_port && !gw_spawn_port_free(p->port)) {
        /* another process listens on it now: move the model, and keep the old URL
         * string alive for readers that loaded it a moment ago */
        unsigned old = p->port;

        if (pick_port(s, &port) != 0) {
            start_failed(p, now, "port %u is taken and no other loopback port is free", old);
            goto out;
        }
        p->old_urls = gw_xrealloc(p->old_urls, (p->n_old_urls + 1) * sizeof(char *));
        p->old_urls[p->n_old_urls++] = p->url;
        set_port(p, port);
        GW_LOG(GW_LOG_WARN, "model %s: port %u is taken by another process; the backend moves "
               "to port %u", name_of(p), old, port);
    }
    port = p->port;
    for (i = 0; i < mc->n_command; i++) {
        argv[i] = gw_conf_expand(mc->command[i], mc->name, port);
        if (len < sizeof(cmdline) - 1)
            len += (size_t)snprintf(cmdline + len, sizeof(cmdline) - len, "%s%s", i ? " " : "",
                                    argv[i]);
    }
    for (i = 0; i < mc->n_env; i++)
        vals[i] = gw_conf_expand(mc->env_values[i], mc->name, port);
    envp = gw_spawn_env(environ, mc->env_names, vals, mc->n_env);
    path = gw_spawn_which(argv[0], envp);
    if (path == NULL) {
        start_failed(p, now, "cannot execute %s: %s", argv[0], strerror(errno));
        goto out;
    }
    memset(&err, 0, sizeof(err));
    if (gw_spawn(path, argv, envp, &p->ch, &err) != GW_OK) {
        start_failed(p, now, "%s", err.msg);
        goto out;
    }

    {
        struct sockaddr_in *v4 = (struct sockaddr_in *)&p->probe_sa;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&p->probe_sa;

        memset(&p->probe_sa, 0, sizeof(p->probe_sa));
        if (inet_pton(AF_INET, p->probe_host, &v4->sin_addr) == 1) {
            v4->sin_family = AF_INET;
            v4->sin_port = htons((uint16_t)p->probe_port);
            p->probe_sl = sizeof(*v4);
        } else {
            inet_pton(AF_INET6, p->probe_host, &v6->sin6_addr);
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons((uint16_t)p->probe_port);
            p->probe_sl = sizeof(*v6);
        }
    }
    if (p->ch.pidfd >= 0)
        epoll_add(s, p->ch.pidfd, EPOLLIN, p->idx, EV_PIDFD);
    epoll_add(s, p->ch.out_fd, EPOLLIN, p->idx, EV_OUT);
    epoll_add(s, p->ch.err_fd, EPOLLIN, p->idx, EV_ERR);
    p->state = P_STARTING;
    p->t_spawn = now;
    p->start_deadline = now + mc->start_timeout_ms;
    p->probe_gap = PROBE_FIRST_MS;
    p->next_probe = now + PROBE_FIRST_MS;
    p->last_probe = now;
    p->n_probes = 0;
    p->vram_logged = 0;
    GW_LOG(GW_LOG_INFO, "model %s: started pid %ld, backend %s: %s%s", name_of(p),
           (long)p->ch.pid, p->url, cmdline, len >= sizeof(cmdline) - 1 ? "..." : "");
out:
    for (i = 0; i < mc->n_command; i++)
        free(argv[i]);
    free(argv);
    for (i = 0; i < mc->n_env; i++)
        free(vals[i]);
    free(vals);
    gw_spawn_strv_free(envp);
    free(path);
}

static void became_ready(gw_proc_t *p, uint64_t now)
{
    p->state = P_READY;
    p->t_ready = now;
    p->failures = 0;
    p->last_error[0] = '\0';
    p->load_requested = 0;
    p->last_used = now;
    GW_LOG(GW_LOG_INFO,
           "model %s ready: pid %ld, %s; first /health 200 %llu ms after the start was wanted "
           "(spawned at +%llu ms, %u probes)",
           name_of(p), (long)p->ch.pid, p->url, (unsigned long long)(now - p->t_want),
           (unsigned long long)(p->t_spawn - p->t_want), p->n_probes);
    fire_waiters(p, GW_OK, NULL);
}

static void want_start(gw_proc_t *p, uint64_t now);

/* The child has exited (pidfd readable or polled): reap it and move on (mu held). */
static void on_exit_event(gw_proc_t *p, uint64_t now)
{
    char desc[96], tail[TAIL_LINES * (TAIL_LINE_BYTES + 3) + 8], msg[400];
    int status = 0, was = p->state;
    pid_t pid = p->ch.pid, r;
    siginfo_t si;

    if (pid <= 0)
        return;
    /* Has it exited? Look without reaping: while it is a zombie its process group id
     * cannot be reused, so whatever it left in the group can be killed safely first. */
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid != pid)
        return;
    (void)kill(-pid, SIGKILL);
    do
        r = waitpid(pid, &status, 0);
    while (r < 0 && errno == EINTR);
    read_output(p, 0, now);
    read_output(p, 1, now);
    close_fd(&p->ch.out_fd);
    close_fd(&p->ch.err_fd);
    close_fd(&p->ch.pidfd);
    probe_close(p);
    p->ch.pid = -1;
    describe_status(status, desc, sizeof(desc));

    switch (was) {
    case P_STARTING:
        start_failed(p, now, "the backend %s while loading", desc);
        break;
    case P_READY:
        tail_join(p, tail, sizeof(tail));
        snprintf(p->last_error, sizeof(p->last_error), "the backend %s unexpectedly", desc);
        GW_LOG(GW_LOG_ERROR,
               "model %s: backend pid %ld %s after %llu ms ready (%ld requests in flight fail); "
               "last stderr lines: %s; the next request starts it again",
               name_of(p), (long)pid, desc, (unsigned long long)(now - p->t_ready), p->leases,
               tail);
        p->state = P_FAILED;
        p->next_start_ok = now; /* a crash after a good start is not backed off */
        break;
    case P_STOPPING:
        GW_LOG(GW_LOG_INFO, "model %s: pid %ld %s, %llu ms after the stop (%s)", name_of(p),
               (long)pid, desc, (unsigned long long)(now - p->t_stop), p->stop_reason);
        p->state = p->stop_next;
        fire_stop_waiters(p, GW_OK, NULL);
        break;
    default:
        break;
    }
    if ((p->state == P_STOPPED || p->state == P_FAILED) && (p->n_waiters || p->load_requested)) {
        if (p->state == P_FAILED && now < p->next_start_ok) {
            snprintf(msg, sizeof(msg),
                     "model '%s' failed to start %u time%s in a row (%.160s); next attempt in "
                     "%llu ms",
                     name_of(p), p->failures, p->failures == 1 ? "" : "s", p->last_error,
                     (unsigned long long)(p->next_start_ok - now));
            fire_waiters(p, GW_EBUSY, msg);
            p->load_requested = 0;
        } else {
            want_start(p, now);
        }
    }
}

/* ================================================================ probe ======= */

static void probe_schedule(gw_proc_t *p, uint64_t now)
{
    unsigned cap = p->sup->conf->health_interval_ms;

    p->next_probe = now + p->probe_gap;
    p->probe_gap = p->probe_gap * 2 > cap ? cap : p->probe_gap * 2;
}

static void probe_done(gw_proc_t *p, int status, uint64_t now)
{
    probe_close(p);
    p->probe_answered = now;
    p->echo_pending = status != 0; /* a refused connection is not logged */
    if (status == 200 && p->state == P_STARTING)
        became_ready(p, now);
    else
        probe_schedule(p, now);
}

static void probe_start(gw_proc_t *p, uint64_t now)
{
    int fd = socket(p->probe_sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    p->last_probe = now;
    p->n_probes++;
    if (fd < 0) {
        probe_schedule(p, now);
        return;
    }
    p->probe_fd = fd;
    p->probe_deadline = now + PROBE_TIMEOUT_MS;
    p->probe_len = 0;
    if (connect(fd, (struct sockaddr *)&p->probe_sa, p->probe_sl) != 0 && errno != EINPROGRESS) {
        probe_done(p, 0, now); /* refused: not listening yet */
        return;
    }
    p->probe_phase = PR_CONNECTING;
    epoll_add(p->sup, fd, EPOLLOUT, p->idx, EV_PROBE);
}

static void probe_event(gw_proc_t *p, uint64_t now)
{
    char req[256];
    int e = 0, n;
    socklen_t el = sizeof(e);
    ssize_t k;

    if (p->probe_phase == PR_CONNECTING) {
        struct epoll_event ev;

        if (getsockopt(p->probe_fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0 || e != 0) {
            probe_done(p, 0, now);
            return;
        }
        n = snprintf(req, sizeof(req),
                     "GET %s/health HTTP/1.1\r\nHost: %s:%u\r\nConnection: close\r\n\r\n",
                     p->probe_prefix, p->probe_host, p->probe_port);
        if (n < 0 || (size_t)n >= sizeof(req) ||
            send(p->probe_fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
            probe_done(p, 0, now);
            return;
        }
        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.u64 = ((uint64_t)p->idx << 8) | EV_PROBE;
        epoll_ctl(p->sup->epfd, EPOLL_CTL_MOD, p->probe_fd, &ev);
        p->probe_phase = PR_READING;
        return;
    }
    k = recv(p->probe_fd, p->probe_buf + p->probe_len, sizeof(p->probe_buf) - 1 - p->probe_len, 0);
    if (k < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (k <= 0) {
        probe_done(p, 0, now);
        return;
    }
    p->probe_len += (size_t)k;
    p->probe_buf[p->probe_len] = '\0';
    /* "HTTP/1.1 200 OK": 12 bytes give the status */
    if (p->probe_len >= 12 || memchr(p->probe_buf, '\n', p->probe_len)) {
        int status = 0;

        if (strncmp(p->probe_buf, "HTTP/1.", 7) == 0)
            status = atoi(p->probe_buf + 9);
        probe_done(p, status, now);
    }
}

/* ================================================================ scheduling == */

static void want_start(gw_proc_t *p, uint64_t now)
{
    p->state = P_PENDING;
    p->t_want = now;
    p->pending_seq = ++p->sup->pend_seq;
    p->pending_deadline = now + p->sup->conf->swap_wait_ms;
    p->vram_logged = 0;
}

/* A pending start gave up waiting for VRAM, or nobody wants it any more (mu held). */
static void pending_end(gw_proc_t *p)
{
    p->state = p->failures ? P_FAILED : P_STOPPED;
    p->load_requested = 0;
}

/* Describes the models holding VRAM that are busy, for a message. */
static void busy_list(gw_supervisor_t *s, char *out, size_t cap)
{
    size_t i, len = 0;

    out[0] = '\0';
    for (i = 0; i < s->n && len + 1 < cap; i++) {
        gw_proc_t *q = &s->procs[i];
        int k;

        if (!has_process(q) || q->conf->vram_mb == 0)
            continue;
        k = snprintf(out + len, cap - len, "%s%s (%u MB, %s, %ld in flight)", len ? ", " : "",
                     name_of(q), q->conf->vram_mb, gw_proc_state_name(public_state(q->state)),
                     q->leases);
        if (k < 0)
            break;
        len += (size_t)k < cap - len ? (size_t)k : cap - len - 1;
    }
    if (len == 0)
        snprintf(out, cap, "none");
}

/* Starts pending models in FIFO order while they fit, evicting idle ones (mu held). */
static void schedule_pending(gw_supervisor_t *s, uint64_t now)
{
    unsigned budget = s->conf->vram_budget_mb;

    for (;;) {
        gw_proc_t *head = NULL;
        uint64_t used = 0, stopping = 0;
        size_t i;

        for (i = 0; i < s->n; i++) {
            gw_proc_t *q = &s->procs[i];

            if (q->state == P_PENDING && (head == NULL || q->pending_seq < head->pending_seq))
                head = q;
            if (has_process(q))
                used += q->conf->vram_mb;
            if (q->state == P_STOPPING)
                stopping += q->conf->vram_mb;
        }
        if (head == NULL)
            return;
        if (budget == 0 || used + head->conf->vram_mb <= budget) {
            spawn_proc(head, now);
            continue;
        }
        if (used - stopping + head->conf->vram_mb <= budget)
            return; /* evicted models are on their way out: wait for their exit */
        {
            gw_sup_cand_t *cand = gw_xcalloc(s->n, sizeof(*cand));
            size_t *pick = gw_xcalloc(s->n, sizeof(*pick)), k;
            unsigned deficit = (unsigned)(used - stopping + head->conf->vram_mb - budget);
            char busy[512];

            for (i = 0; i < s->n; i++) {
                gw_proc_t *q = &s->procs[i];

                cand[i].vram_mb = q->conf->vram_mb;
                cand[i].last_used_ms = q->last_used;
                cand[i].idle = q->state == P_READY && q->leases == 0 && q->n_waiters == 0;
            }
            k = gw_supervisor_pick_victims(cand, s->n, deficit, pick);
            for (i = 0; i < k; i++)
                begin_stop(&s->procs[pick[i]], now, P_STOPPED,
                           "evicted, least recently used idle model, to make room for %s "
                           "(%u MB)",
                           name_of(head), head->conf->vram_mb);
            if (k == 0 && !head->vram_logged) {
                head->vram_logged = 1;
                busy_list(s, busy, sizeof(busy));
                GW_LOG(GW_LOG_WARN,
                       "model %s waits for VRAM: needs %u MB, budget %u MB, %llu MB in use by "
                       "models that cannot be stopped now: %s",
                       name_of(head), head->conf->vram_mb, budget, (unsigned long long)used,
                       busy);
            }
            free(cand);
            free(pick);
        }
        return;
    }
}

/* Everything time- or state-driven (mu held). */
static void reconcile(gw_supervisor_t *s, uint64_t now)
{
    const gw_conf_t *conf = s->conf;
    char msg[400], busy[400];
    size_t i;

    for (i = 0; i < s->n; i++) {
        gw_proc_t *p = &s->procs[i];
        gw_sup_wait_t *w;

        switch (p->state) {
        case P_STARTING:
            if (now >= p->start_deadline) {
                start_failed(p, now, "not ready within %u ms (start_timeout_ms)",
                             p->conf->start_timeout_ms);
            } else if (p->probe_fd < 0 && now >= p->next_probe) {
                probe_start(p, now);
            } else if (p->probe_fd >= 0 && now >= p->probe_deadline) {
                probe_close(p);
                probe_schedule(p, now);
            }
            break;
        case P_READY:
            if (p->conf->ttl_s && p->leases == 0 && p->n_waiters == 0 &&
                now - p->last_used >= (uint64_t)p->conf->ttl_s * 1000u)
                begin_stop(p, now, P_STOPPED, "idle for %u s (ttl_s)", p->conf->ttl_s);
            break;
        case P_STOPPING:
            if (!p->killed && now >= p->kill_at) {
                p->killed = 1;
                gw_spawn_kill(p->ch.pid, SIGKILL);
                GW_LOG(GW_LOG_WARN,
                       "model %s: pid %ld still running %u ms after SIGTERM: sent SIGKILL to its "
                       "process group",
                       name_of(p), (long)p->ch.pid, conf->stop_grace_ms);
            }
            break;
        case P_PENDING:
            if (p->n_waiters == 0 && !p->load_requested) {
                pending_end(p);
            } else if (now >= p->pending_deadline) {
                busy_list(s, busy, sizeof(busy));
                snprintf(p->last_error, sizeof(p->last_error),
                         "no VRAM for %u MB within %u ms", p->conf->vram_mb, conf->swap_wait_ms);
                GW_LOG(GW_LOG_WARN,
                       "model %s: gave up waiting %u ms for %u MB of VRAM (budget %u MB); "
                       "holding it: %s",
                       name_of(p), conf->swap_wait_ms, p->conf->vram_mb, conf->vram_budget_mb,
                       busy);
                snprintf(msg, sizeof(msg),
                         "model '%s' cannot be loaded now: it needs %u MB of VRAM and the "
                         "models holding the %u MB budget stayed busy for %u ms: %.150s",
                         name_of(p), p->conf->vram_mb, conf->vram_budget_mb, conf->swap_wait_ms,
                         busy);
                fire_waiters(p, GW_EBUSY, msg);
                pending_end(p);
            }
            break;
        default:
            break;
        }
        /* SSE keep-alive for streams waiting on this model */
        if (p->n_waiters == 0) {
            p->next_ping = 0;
        } else if (p->next_ping && now >= p->next_ping) {
            for (w = p->waiters.next; w != &p->waiters; w = w->next) {
                if (w->on_tick && !w->ticking) {
                    w->ticking = 1;
                    w->tick_next = s->tick_head;
                    s->tick_head = w;
                }
            }
            p->next_ping = now + conf->loading_ping_ms;
        }
    }
    schedule_pending(s, now);
}

/* Milliseconds until the next deadline, or -1 (mu held). */
static int next_timeout(gw_supervisor_t *s, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    size_t i;

#define AT(t)                                                                                  \
    do {                                                                                       \
        if ((t) < next)                                                                        \
            next = (t);                                                                        \
    } while (0)
    for (i = 0; i < s->n; i++) {
        gw_proc_t *p = &s->procs[i];

        switch (p->state) {
        case P_STARTING:
            AT(p->start_deadline);
            AT(p->probe_fd < 0 ? p->next_probe : p->probe_deadline);
            break;
        case P_READY:
            p->ttl_armed = p->conf->ttl_s && p->leases == 0 && p->n_waiters == 0;
            if (p->ttl_armed)
                AT(p->last_used + (uint64_t)p->conf->ttl_s * 1000u);
            break;
        case P_STOPPING:
            if (!p->killed)
                AT(p->kill_at);
            break;
        case P_PENDING:
            AT(p->pending_deadline);
            break;
        default:
            break;
        }
        if (p->next_ping)
            AT(p->next_ping);
        if (has_process(p) && p->ch.pidfd < 0)
            AT(now + PIDFD_POLL_MS);
    }
#undef AT
    if (next == UINT64_MAX)
        return -1;
    if (next <= now)
        return 0;
    return next - now > 3600000u ? 3600000 : (int)(next - now);
}

/* ================================================================ thread ====== */

static void on_event(gw_supervisor_t *s, uint64_t tag, uint64_t now)
{
    size_t idx = (size_t)(tag >> 8);
    gw_proc_t *p;

    if ((tag & 0xff) == EV_WAKE) {
        uint64_t v;

        (void)!read(s->evfd, &v, sizeof(v));
        return;
    }
    if (idx >= s->n)
        return;
    p = &s->procs[idx];
    switch (tag & 0xff) {
    case EV_PIDFD:
        on_exit_event(p, now);
        break;
    case EV_OUT:
        read_output(p, 0, now);
        break;
    case EV_ERR:
        read_output(p, 1, now);
        break;
    case EV_PROBE:
        if (p->probe_fd >= 0)
            probe_event(p, now);
        break;
    }
}

/* Shutdown: fail every waiter, stop every process (mu held). */
static void begin_shutdown(gw_supervisor_t *s, uint64_t now)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        gw_proc_t *p = &s->procs[i];

        fire_waiters(p, GW_EBUSY, "the gateway is shutting down");
        p->load_requested = 0;
        if (p->state == P_STARTING || p->state == P_READY)
            begin_stop(p, now, P_STOPPED, "the gateway is shutting down");
        else if (p->state == P_PENDING)
            pending_end(p);
    }
}

static void *thread_main(void *arg)
{
    gw_supervisor_t *s = arg;
    struct epoll_event evs[64];
    int shutting = 0;

    pthread_mutex_lock(&s->mu);
    for (;;) {
        uint64_t now = now_ms();
        int timeout, n, i, alive = 0;
        size_t k;

        if (s->quit && !shutting) {
            shutting = 1;
            begin_shutdown(s, now);
        }
        reconcile(s, now);
        run_callbacks(s);
        for (k = 0; k < s->n; k++) {
            if (has_process(&s->procs[k]) && s->procs[k].ch.pidfd < 0)
                on_exit_event(&s->procs[k], now); /* polled without pidfd */
            alive |= s->procs[k].ch.pid > 0;
        }
        if (shutting && !alive) {
            run_callbacks(s);
            break;
        }
        timeout = next_timeout(s, now_ms());
        pthread_mutex_unlock(&s->mu);
        n = epoll_wait(s->epfd, evs, 64, timeout);
        pthread_mutex_lock(&s->mu);
        now = now_ms();
        for (i = 0; i < n; i++)
            on_event(s, evs[i].data.u64, now);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ================================================================ verbs ======= */

static gw_err_t enqueue(gw_model_t *m, gw_sup_wait_t *w, int kind, gw_errbuf_t *err)
{
    gw_proc_t *p = m->proc;
    gw_supervisor_t *s;
    gw_err_t rc = GW_OK;
    uint64_t now;
    int poke = 0;

    w->queued = 0;
    w->state = W_IDLE;
    w->ticking = 0;
    w->kind = kind;
    if (p == NULL) {
        if (kind == W_LEASE)
            return GW_OK;
        return gw_errf(err, GW_EPARAM, NULL,
                       "model '%s' has a fixed upstream and is not started by the gateway",
                       m->conf->name);
    }
    s = p->sup;
    now = now_ms();
    pthread_mutex_lock(&s->mu);
    if (s->quit) {
        rc = gw_errf(err, GW_EBUSY, NULL, "the gateway is shutting down");
        goto out;
    }
    if (p->state == P_READY) {
        if (kind == W_LEASE)
            p->leases++;
        p->last_used = now;
        goto out;
    }
    if (p->state == P_FAILED && now < p->next_start_ok) {
        rc = gw_errf(err, GW_EBUSY, NULL,
                     "model '%s' failed to start %u time%s in a row (%.160s); next attempt in "
                     "%llu ms",
                     name_of(p), p->failures, p->failures == 1 ? "" : "s", p->last_error,
                     (unsigned long long)(p->next_start_ok - now));
        goto out;
    }
    if (p->state == P_STOPPED || p->state == P_FAILED) {
        want_start(p, now);
        poke = 1;
    }
    if (p->n_waiters >= s->conf->queue_max) {
        if (kind == W_LOAD)
            p->load_requested = 1;
        rc = gw_errf(err, GW_EOVERLOAD, NULL,
                     "model '%s' is starting and %zu requests already wait for it "
                     "(backends.queue_max); retry shortly",
                     name_of(p), p->n_waiters);
        goto out;
    }
    list_push(&p->waiters, w);
    p->n_waiters++;
    w->state = W_QUEUED;
    w->queued = 1;
    if (w->on_tick && p->next_ping == 0) {
        p->next_ping = now + s->conf->loading_ping_ms;
        poke = 1;
    }
out:
    pthread_mutex_unlock(&s->mu);
    if (poke)
        wake(s); /* a ready model costs the thread nothing */
    return rc;
}

gw_err_t gw_supervisor_acquire(gw_model_t *m, gw_sup_wait_t *w, gw_errbuf_t *err)
{
    return enqueue(m, w, W_LEASE, err);
}

gw_err_t gw_supervisor_load(gw_model_t *m, gw_sup_wait_t *w, gw_errbuf_t *err)
{
    return enqueue(m, w, W_LOAD, err);
}

void gw_supervisor_release(gw_model_t *m)
{
    gw_proc_t *p = m->proc;
    gw_supervisor_t *s;
    int poke = 0;
    size_t i;

    if (p == NULL)
        return;
    s = p->sup;
    pthread_mutex_lock(&s->mu);
    if (p->leases > 0)
        p->leases--;
    p->last_used = now_ms();
    if (p->leases == 0) {
        /* the thread must see that the model went idle: to arm its ttl (unless its sleep
         * already ends at an older, earlier ttl deadline: it re-reads last_used then), and
         * so that a pending start may evict it */
        poke = p->conf->ttl_s > 0 && !p->ttl_armed;
        for (i = 0; i < s->n && !poke; i++)
            poke = s->procs[i].state == P_PENDING;
    }
    pthread_mutex_unlock(&s->mu);
    if (poke)
        wake(s);
}

int gw_supervisor_cancel(gw_model_t *m, gw_sup_wait_t *w)
{
    gw_proc_t *p = m->proc;
    gw_supervisor_t *s;
    int removed = 0;

    if (p == NULL || !w->queued)
        return 0;
    s = p->sup;
    pthread_mutex_lock(&s->mu);
    while (w->state == W_FIRING || w->ticking)
        pthread_cond_wait(&s->cond, &s->mu);
    if (w->state == W_QUEUED) {
        list_del(w);
        if (w->kind != W_UNLOAD)
            p->n_waiters--;
        w->state = W_DONE;
        removed = 1;
    }
    pthread_mutex_unlock(&s->mu);
    if (removed)
        wake(s);
    return removed;
}

gw_err_t gw_supervisor_unload(gw_model_t *m, gw_sup_wait_t *w, gw_errbuf_t *err)
{
    gw_proc_t *p = m->proc;
    gw_supervisor_t *s;
    gw_err_t rc = GW_OK;
    uint64_t now;

    w->queued = 0;
    w->state = W_IDLE;
    w->ticking = 0;
    w->kind = W_UNLOAD;
    if (p == NULL)
        return gw_errf(err, GW_EPARAM, NULL,
                       "model '%s' has a fixed upstream and is not started by the gateway",
                       m->conf->name);
    s = p->sup;
    now = now_ms();
    pthread_mutex_lock(&s->mu);
    switch (p->state) {
    case P_STOPPED:
        break;
    case P_FAILED:
        p->state = P_STOPPED;
        p->failures = 0;
        p->next_start_ok = 0;
        break;
    case P_PENDING:
    case P_STARTING:
    case P_READY:
        if (p->leases > 0 || p->n_waiters > 0) {
            rc = gw_errf(err, GW_ECONFLICT, NULL,
                         "model '%s' is busy (%ld requests in flight, %zu waiting for it); a "
                         "busy model is not stopped: retry when it is idle",
                         name_of(p), p->leases, p->n_waiters);
            break;
        }
        p->load_requested = 0;
        if (p->state == P_PENDING) {
            pending_end(p);
            break;
        }
        begin_stop(p, now, P_STOPPED, "unloaded on request");
        /* fall through */
    case P_STOPPING:
        list_push(&p->stop_waiters, w);
        w->state = W_QUEUED;
        w->queued = 1;
        break;
    }
    pthread_mutex_unlock(&s->mu);
    wake(s);
    return rc;
}

void gw_supervisor_info(gw_model_t *m, gw_sup_info_t *out)
{
    gw_proc_t *p = m->proc;
    gw_supervisor_t *s;
    uint64_t now;

    memset(out, 0, sizeof(*out));
    out->pid = -1;
    if (p == NULL)
        return;
    s = p->sup;
    now = now_ms();
    pthread_mutex_lock(&s->mu);
    out->managed = 1;
    out->state = public_state(p->state);
    out->pid = has_process(p) ? (long)p->ch.pid : -1;
    out->port = has_process(p) ? p->port : 0;
    out->vram_mb = p->conf->vram_mb;
    out->inflight = p->leases;
    out->queued = p->n_waiters;
    out->failures = p->failures;
    out->retry_in_ms = p->state == P_FAILED && p->next_start_ok > now ? p->next_start_ok - now : 0;
    snprintf(out->last_error, sizeof(out->last_error), "%s", p->last_error);
    pthread_mutex_unlock(&s->mu);
}

/* ================================================================ lifecycle === */

gw_err_t gw_supervisor_new(const gw_conf_t *conf, gw_registry_t *reg, gw_supervisor_t **out,
                           gw_errbuf_t *err)
{
    gw_supervisor_t *s = gw_xcalloc(1, sizeof(*s));
    gw_err_t rc = GW_EINTERNAL;
    size_t i, n = gw_registry_count(reg);
    uint64_t now = now_ms();
    struct epoll_event ev;

    s->conf = conf;
    s->reg = reg;
    s->evfd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->epfd < 0 || s->evfd < 0) {
        gw_errf(err, rc, NULL, "supervisor: %s", strerror(errno));
        goto out;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = EV_WAKE;
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &ev);

    s->procs = gw_xcalloc(n ? n : 1, sizeof(*s->procs));
    for (i = 0; i < n; i++) {
        gw_model_t *m = gw_registry_at(reg, i);
        gw_proc_t *p;

        if (m->conf->n_command == 0)
            continue;
        p = &s->procs[s->n];
        p->sup = s;
        p->m = m;
        p->conf = m->conf;
        p->idx = s->n++;
        p->ch.pid = -1;
        p->ch.pidfd = p->ch.out_fd = p->ch.err_fd = -1;
        p->probe_fd = -1;
        p->probe_prefix = "";
        list_init(&p->waiters);
        list_init(&p->stop_waiters);
        if (!m->conf->uses_port) {
            const char *path = "";

            gw_conf_split_http_url(m->conf->upstream, p->probe_host, sizeof(p->probe_host),
                                   &p->probe_port, &path);
            p->probe_prefix = path;
            p->port = p->probe_port;
            p->url = gw_xstrdup(m->conf->upstream);
        } else {
            unsigned port;

            if (pick_port(s, &port) != 0) {
                gw_errf(err, rc, NULL, "model %s: no free loopback port for ${PORT}",
                        m->conf->name);
                goto out;
            }
            set_port(p, port);
        }
        m->proc = p;
    }
    for (i = 0; i < conf->n_preload; i++) {
        gw_model_t *m = gw_registry_at(reg, conf->preload[i]);

        if (m && m->proc) {
            m->proc->load_requested = 1;
            want_start(m->proc, now);
        }
    }
    if (pthread_create(&s->thread, NULL, thread_main, s) != 0) {
        gw_errf(err, rc, NULL, "supervisor: cannot start its thread: %s", strerror(errno));
        goto out;
    }
    s->thread_started = 1;
    pthread_setname_np(s->thread, "gw-supervisor");
    rc = GW_OK;
out:
    if (rc != GW_OK) {
        gw_supervisor_free(s);
        s = NULL;
    }
    *out = s;
    return rc;
}

void gw_supervisor_free(gw_supervisor_t *s)
{
    size_t i;

    if (s == NULL)
        return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->quit = 1;
        pthread_mutex_unlock(&s->mu);
        wake(s);
        pthread_join(s->thread, NULL);
    }
    for (i = 0; i < s->n; i++) {
        gw_proc_t *p = &s->procs[i];
        size_t j;

        p->m->proc = NULL;
        if (p->conf->uses_port)
            atomic_store(&p->m->upstream, NULL);
        free(p->url);
        for (j = 0; j < p->n_old_urls; j++)
            free(p->old_urls[j]);
        free(p->old_urls);
    }
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->evfd >= 0)
        close(s->evfd);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mu);
    free(s->procs);
    free(s);
}
