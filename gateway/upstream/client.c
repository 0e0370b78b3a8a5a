/*
 * client.c - the upstream thread: curl multi + epoll + timerfds + a command eventfd.
 *
 * Epoll tags: a value with the low 3 bits set is `(fd << 3) | kind` for our own fds
 * and curl's sockets; a value with the low 3 bits clear is a gw_xfer_t pointer (a
 * client-socket watch). Pointers are safe there because a transfer is released only
 * while processing commands, which happens after every other event of the same batch,
 * and the watch is removed (by the owner, before it posts the cancel) beforehand.
 */
#include "upstream/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"

enum { CMD_START = 1, CMD_CANCEL, CMD_UNPAUSE, CMD_QUIT, CMD_CALL };
enum { TAG_EVENT = 1, TAG_DEADLINE = 3, TAG_CURL_SOCK = 4 };

#define TAG(fd, kind) (((uint64_t)(unsigned)(fd) << 3) | (kind))

struct gw_upstream {
    pthread_t thread;
    int epfd, evfd, dl_tfd;
    int curl_due;               /* curl asked for a timeout call at curl_due_at */
    uint64_t curl_due_at;       /* gw_now_ms() */
    CURLM *multi;
    pthread_mutex_t qmu;
    gw_upstream_cmd_t *qhead, *qtail;
    gw_upstream_cmd_t quit_cmd;
    int quit;
    int sleeping;               /* under qmu: the thread is (about to be) in epoll_wait */
    int wake_pending;           /* under qmu: the eventfd was written since it slept */
    gw_xfer_t active;           /* sentinel of the list of transfers in the multi */
    gw_xfer_t connecting;       /* sentinel of the FIFO of connect deadlines */
    uint64_t armed_deadline;    /* 0 = deadline timer disarmed */
};

uint64_t gw_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t gw_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void gw_xfer_init(gw_xfer_t *x, const gw_xfer_ops_t *ops)
{
    memset(x, 0, sizeof(*x));
    x->ops = ops;
    x->watch_fd = -1;
}

/* ---------------------------------------------------------------- commands ---- */

/* Queues a command. The eventfd is written only when the thread sleeps (or is about
 * to): a busy thread picks the command up on its next turn, without a syscall. */
static void post(gw_upstream_t *u, gw_upstream_cmd_t *c)
{
    uint64_t one = 1;
    int wake;

    c->next = NULL;
    pthread_mutex_lock(&u->qmu);
    if (u->qtail)
        u->qtail->next = c;
    else
        u->qhead = c;
    u->qtail = c;
    wake = u->sleeping && !u->wake_pending;
    if (wake)
        u->wake_pending = 1;
    pthread_mutex_unlock(&u->qmu);
    if (wake)
        (void)!write(u->evfd, &one, sizeof(one));
}

void gw_upstream_start(gw_upstream_t *u, gw_xfer_t *x)
{
    x->cmd_start.op = CMD_START;
    x->cmd_start.x = x;
    x->started = 1;
    post(u, &x->cmd_start);
}

void gw_upstream_cancel(gw_upstream_t *u, gw_xfer_t *x)
{
    x->cmd_cancel.op = CMD_CANCEL;
    x->cmd_cancel.x = x;
    post(u, &x->cmd_cancel);
}

void gw_upstream_unpause(gw_upstream_t *u, gw_xfer_t *x)
{
    x->cmd_unpause.op = CMD_UNPAUSE;
    x->cmd_unpause.x = x;
    post(u, &x->cmd_unpause);
}

void gw_upstream_call(gw_upstream_t *u, gw_upstream_cmd_t *c, gw_upstream_fn fn, void *arg)
{
    c->op = CMD_CALL;
    c->x = NULL;
    c->fn = fn;
    c->arg = arg;
    post(u, c);
}

int gw_upstream_watch(gw_upstream_t *u, gw_xfer_t *x, int fd)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLRDHUP | EPOLLONESHOT;
    ev.data.ptr = x;
    if (epoll_ctl(u->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return -1;
    x->watch_fd = fd;
    return 0;
}

void gw_upstream_unwatch(gw_upstream_t *u, gw_xfer_t *x)
{
    if (x->watch_fd >= 0) {
        epoll_ctl(u->epfd, EPOLL_CTL_DEL, x->watch_fd, NULL);
        x->watch_fd = -1;
    }
}

/* ---------------------------------------------------------------- deadlines --- */

static void arm(int tfd, uint64_t ms_from_now_or_ns, int is_ns)
{
    struct itimerspec its;

    memset(&its, 0, sizeof(its));
    if (is_ns) {
        its.it_value.tv_nsec = (long)ms_from_now_or_ns;
    } else {
        its.it_value.tv_sec = (time_t)(ms_from_now_or_ns / 1000);
        its.it_value.tv_nsec = (long)(ms_from_now_or_ns % 1000) * 1000000L;
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1;
    }
    timerfd_settime(tfd, 0, &its, NULL);
}

static void arm_deadline(gw_upstream_t *u, uint64_t when)
{
    uint64_t now = gw_now_ms();

    u->armed_deadline = when;
    arm(u->dl_tfd, when > now ? when - now : 0, 0);
}

void gw_upstream_set_deadline(gw_upstream_t *u, gw_xfer_t *x, uint64_t deadline_ms)
{
    x->deadline_ms = deadline_ms;
    if (deadline_ms && x->in_multi && (u->armed_deadline == 0 || deadline_ms < u->armed_deadline))
        arm_deadline(u, deadline_ms);
}

static void scan_deadlines(gw_upstream_t *u)
{
    uint64_t now = gw_now_ms(), next = 0;
    gw_xfer_t *x, *nx;

    u->armed_deadline = 0;
    for (x = u->active.next; x != &u->active; x = nx) {
        nx = x->next;
        if (x->deadline_ms == 0)
            continue;
        if (x->deadline_ms <= now) {
            x->deadline_ms = 0;
            x->ops->on_deadline(x); /* may abort x: nx is still valid (abort unlinks x only) */
            continue;
        }
        if (next == 0 || x->deadline_ms < next)
            next = x->deadline_ms;
    }
    if (next)
        arm_deadline(u, next);
}

/* ---------------------------------------------------------- connect deadlines - */

static void cfifo_unlink(gw_xfer_t *x)
{
    if (!x->in_cfifo)
        return;
    x->cprev->cnext = x->cnext;
    x->cnext->cprev = x->cprev;
    x->cprev = x->cnext = NULL;
    x->in_cfifo = 0;
}

/* Deadlines mostly arrive in order (start time + one configured timeout): insert from
 * the tail. */
static void cfifo_insert(gw_upstream_t *u, gw_xfer_t *x)
{
    gw_xfer_t *at = u->connecting.cprev;

    while (at != &u->connecting && at->connect_deadline_ms > x->connect_deadline_ms)
        at = at->cprev;
    x->cprev = at;
    x->cnext = at->cnext;
    at->cnext->cprev = x;
    at->cnext = x;
    x->in_cfifo = 1;
}

void gw_upstream_connected(gw_upstream_t *u, gw_xfer_t *x)
{
    (void)u;
    cfifo_unlink(x);
    x->connect_deadline_ms = 0;
}

/* Ends the transfers whose connect deadline has passed (their owners' on_deadline). */
static void run_connect_deadlines(gw_upstream_t *u)
{
    uint64_t now;
    gw_xfer_t *x;

    if (u->connecting.cnext == &u->connecting)
        return;
    now = gw_now_ms();
    while ((x = u->connecting.cnext) != &u->connecting && x->connect_deadline_ms <= now) {
        cfifo_unlink(x);
        x->connect_deadline_ms = 0;
        x->ops->on_deadline(x); /* may abort x */
    }
}

/* ---------------------------------------------------------------- multi ------- */

static void unlink_active(gw_xfer_t *x)
{
    x->prev->next = x->next;
    x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

void gw_upstream_abort(gw_upstream_t *u, gw_xfer_t *x, CURLcode rc)
{
    if (!x->in_multi)
        return;
    curl_multi_remove_handle(u->multi, x->easy);
    x->in_multi = 0;
    unlink_active(x);
    cfifo_unlink(x);
    x->ops->on_done(x, rc);
}

void gw_upstream_add(gw_upstream_t *u, gw_xfer_t *x)
{
    x->started = 1;
    if (curl_multi_add_handle(u->multi, x->easy) != CURLM_OK) {
        x->ops->on_done(x, CURLE_FAILED_INIT);
        return;
    }
    x->in_multi = 1;
    x->next = u->active.next;
    x->prev = &u->active;
    u->active.next->prev = x;
    u->active.next = x;
    if (x->deadline_ms)
        gw_upstream_set_deadline(u, x, x->deadline_ms);
    if (x->connect_deadline_ms)
        cfifo_insert(u, x);
}

static void drain_info(gw_upstream_t *u)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(u->multi, &left)) != NULL) {
        gw_xfer_t *x = NULL;

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x && x->in_multi)
            gw_upstream_abort(u, x, m->data.result);
    }
}

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    gw_upstream_t *u = userp;
    struct epoll_event ev;

    (void)e;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(u->epfd, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    ev.data.u64 = TAG(s, TAG_CURL_SOCK);
    if (socketp == NULL) {
        if (epoll_ctl(u->epfd, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST)
            epoll_ctl(u->epfd, EPOLL_CTL_MOD, s, &ev);
        curl_multi_assign(u->multi, s, (void *)1);
    } else {
        if (epoll_ctl(u->epfd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
            epoll_ctl(u->epfd, EPOLL_CTL_ADD, s, &ev);
    }
    return 0;
}

/* curl's timer: no timerfd (reprogramming one per call cost a quarter of the CPU under
 * load); the loop's epoll_wait timeout honours it instead. */
static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    gw_upstream_t *u = userp;

    (void)m;
    if (timeout_ms < 0) {
        u->curl_due = 0;
    } else {
        u->curl_due = 1;
        u->curl_due_at = gw_now_ms() + (uint64_t)timeout_ms;
    }
    return 0;
}

static int loop_timeout(gw_upstream_t *u)
{
    uint64_t now, due;
    int have_connect = u->connecting.cnext != &u->connecting;

    if (!u->curl_due && !have_connect)
        return -1;
    due = u->curl_due ? u->curl_due_at : UINT64_MAX;
    if (have_connect && u->connecting.cnext->connect_deadline_ms < due)
        due = u->connecting.cnext->connect_deadline_ms;
    now = gw_now_ms();
    if (due <= now)
        return 0;
    return (int)(due - now > 60000 ? 60000 : due - now);
}

static void run_curl_timeout(gw_upstream_t *u)
{
    int running;

    if (u->curl_due && u->curl_due_at <= gw_now_ms()) {
        u->curl_due = 0;
        curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        drain_info(u);
    }
}

static void run_commands(gw_upstream_t *u)
{
    gw_upstream_cmd_t *c, *next;
    uint64_t v;

    pthread_mutex_lock(&u->qmu);
    if (u->wake_pending) {
        (void)!read(u->evfd, &v, sizeof(v));
        u->wake_pending = 0;
    }
    c = u->qhead;
    u->qhead = u->qtail = NULL;
    pthread_mutex_unlock(&u->qmu);
    for (; c; c = next) {
        gw_xfer_t *x = c->x;

        next = c->next; /* c lives inside x, which CMD_CANCEL may free */
        switch (c->op) {
        case CMD_START:
            gw_upstream_add(u, x);
            break;
        case CMD_CALL:
            c->fn(c->arg); /* may free the node: next was read above */
            break;
        case CMD_UNPAUSE:
            if (x->in_multi)
                curl_easy_pause(x->easy, CURLPAUSE_CONT);
            break;
        case CMD_CANCEL:
            if (x->in_multi) {
                curl_multi_remove_handle(u->multi, x->easy);
                x->in_multi = 0;
                unlink_active(x);
            }
            cfifo_unlink(x);
            if (x->easy)
                curl_easy_cleanup(x->easy);
            x->easy = NULL;
            x->ops->on_release(x);
            break;
        case CMD_QUIT:
            u->quit = 1;
            break;
        }
    }
}

static void *thread_main(void *arg)
{
    gw_upstream_t *u = arg;
    struct epoll_event evs[256];
    int running;

    while (!u->quit) {
        int n, i, have_cmd, timeout = loop_timeout(u);

        pthread_mutex_lock(&u->qmu);
        have_cmd = u->qhead != NULL;
        u->sleeping = !have_cmd;
        pthread_mutex_unlock(&u->qmu);
        n = epoll_wait(u->epfd, evs, 256, have_cmd ? 0 : timeout);
        pthread_mutex_lock(&u->qmu);
        u->sleeping = 0;
        have_cmd = u->qhead != NULL;
        pthread_mutex_unlock(&u->qmu);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64, v;
            int fd = (int)(tag >> 3);

            if ((tag & 7) == 0) {
                gw_xfer_t *x = evs[i].data.ptr;

                x->ops->on_hup(x);
                continue;
            }
            switch (tag & 7) {
            case TAG_EVENT:
                have_cmd = 1; /* drained in run_commands */
                break;
            case TAG_DEADLINE:
                (void)!read(u->dl_tfd, &v, sizeof(v));
                scan_deadlines(u);
                break;
            case TAG_CURL_SOCK: {
                int flags = 0;

                if (evs[i].events & EPOLLIN)
                    flags |= CURL_CSELECT_IN;
                if (evs[i].events & EPOLLOUT)
                    flags |= CURL_CSELECT_OUT;
                if (evs[i].events & (EPOLLERR | EPOLLHUP))
                    flags |= CURL_CSELECT_ERR;
                curl_multi_socket_action(u->multi, fd, flags, &running);
                break;
            }
            }
            drain_info(u);
        }
        if (have_cmd)
            run_commands(u);
        run_curl_timeout(u);
        run_connect_deadlines(u);
    }
    return NULL;
}

gw_upstream_t *gw_upstream_new(void)
{
    gw_upstream_t *u = gw_xcalloc(1, sizeof(*u));
    struct epoll_event ev;

    u->active.next = u->active.prev = &u->active;
    u->connecting.cnext = u->connecting.cprev = &u->connecting;
    pthread_mutex_init(&u->qmu, NULL);
    u->epfd = epoll_create1(EPOLL_CLOEXEC);
    u->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    u->dl_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (u->epfd < 0 || u->evfd < 0 || u->dl_tfd < 0)
        goto fail;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = TAG(u->evfd, TAG_EVENT);
    epoll_ctl(u->epfd, EPOLL_CTL_ADD, u->evfd, &ev);
    ev.data.u64 = TAG(u->dl_tfd, TAG_DEADLINE);
    epoll_ctl(u->epfd, EPOLL_CTL_ADD, u->dl_tfd, &ev);

    u->multi = curl_multi_init();
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, 1024L);
    if (pthread_create(&u->thread, NULL, thread_main, u) != 0)
        goto fail;
    pthread_setname_np(u->thread, "gw-upstream");
    return u;
fail:
    fprintf(stderr, "llama-gateway: cannot start the upstream thread: %s\n", strerror(errno));
    exit(1);
}

void gw_upstream_free(gw_upstream_t *u)
{
    if (u == NULL)
        return;
    u->quit_cmd.op = CMD_QUIT;
    post(u, &u->quit_cmd);
    pthread_join(u->thread, NULL);
    curl_multi_cleanup(u->multi);
    close(u->epfd);
    close(u->evfd);
    close(u->dl_tfd);
    pthread_mutex_destroy(&u->qmu);
    free(u);
}
