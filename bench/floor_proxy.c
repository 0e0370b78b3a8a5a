/*
 * floor_proxy: the cheapest possible TCP relay, as a floor for what any HTTP proxy can reach
 * on this machine. It is not an HTTP proxy: it parses nothing. Each accepted client
 * connection gets its own upstream connection, opened at accept, and bytes are copied both
 * ways with one read() and one write() per readiness event. T threads, each with its own
 * epoll and its own SO_REUSEPORT listener. A real proxy does everything this does plus HTTP
 * parsing, routing and header rewriting, so its cost per request can only be higher.
 *
 * --handoff: the same relay with the thread hand-offs of the gateway's architecture (an
 * MHD worker owns the client side, one upstream thread owns the backend side): a front
 * thread owns the client sockets, an upstream thread owns the backend sockets, and each
 * read crosses to the other thread through a mutex-protected queue and an eventfd written
 * only while that thread sleeps (what upstream/client.c does). It is the floor for any
 * implementation of that architecture.
 *
 *   floor_proxy --port P --upstream-port U [--threads T | --handoff]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct half_s {
    int fd;
    struct half_s *peer;
} half_t;

static int g_port, g_up_port;

static int listen_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 4096) != 0) {
        perror("floor_proxy: bind/listen");
        exit(1);
    }
    return fd;
}

static int connect_upstream(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_up_port)};

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void close_pair(half_t *h)
{
    half_t *p = h->peer;

    close(h->fd);
    close(p->fd);
    free(h < p ? h : p);
}

static void *loop(void *arg)
{
    int lfd = listen_socket(), ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[256];
    char buf[65536];

    (void)arg;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);

        for (int i = 0; i < n; i++) {
            half_t *h = evs[i].data.ptr;

            if (h == (void *)1)
                continue;
            if (h == NULL) {
                int c, u, one = 1;
                half_t *pair;

                while ((c = accept4(lfd, NULL, NULL, 0)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    u = connect_upstream();
                    if (u < 0) {
                        close(c);
                        continue;
                    }
                    pair = calloc(2, sizeof(*pair));
                    pair[0] = (half_t){.fd = c, .peer = &pair[1]};
                    pair[1] = (half_t){.fd = u, .peer = &pair[0]};
                    ev.events = EPOLLIN | EPOLLRDHUP;
                    ev.data.ptr = &pair[0];
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                    ev.data.ptr = &pair[1];
                    epoll_ctl(ep, EPOLL_CTL_ADD, u, &ev);
                }
                continue;
            }
            ssize_t r = read(h->fd, buf, sizeof(buf));
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                epoll_ctl(ep, EPOLL_CTL_DEL, h->fd, NULL);
                epoll_ctl(ep, EPOLL_CTL_DEL, h->peer->fd, NULL);
                /* the other half may still be listed later in this batch */
                for (int j = i + 1; j < n; j++)
                    if (evs[j].data.ptr == h->peer || evs[j].data.ptr == h)
                        evs[j].data.ptr = (void *)1;
                close_pair(h);
                continue;
            }
            /* blocking write of everything read: replies here are small */
            for (ssize_t off = 0; off < r;) {
                ssize_t w = write(h->peer->fd, buf + off, (size_t)(r - off));
                if (w <= 0)
                    break;
                off += w;
            }
        }
    }
    return NULL;
}

/* ---- --handoff ------------------------------------------------------------ */

typedef struct msg_s {
    struct msg_s *next;
    half_t *to; /* the socket to write to */
    size_t len;
    char data[4096];
} msg_t;

typedef struct side_s {
    int ep, evfd;
    pthread_mutex_t mu;
    msg_t *head, *tail;
    int sleeping, wake_pending;
} side_t;

static side_t g_front, g_up;

static void side_init(side_t *sd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = (void *)2};

    sd->ep = epoll_create1(0);
    sd->evfd = eventfd(0, EFD_NONBLOCK);
    pthread_mutex_init(&sd->mu, NULL);
    epoll_ctl(sd->ep, EPOLL_CTL_ADD, sd->evfd, &ev);
}

static void side_post(side_t *sd, msg_t *m)
{
    uint64_t one = 1;
    int wake;

    m->next = NULL;
    pthread_mutex_lock(&sd->mu);
    if (sd->tail)
        sd->tail->next = m;
    else
        sd->head = m;
    sd->tail = m;
    wake = sd->sleeping && !sd->wake_pending;
    if (wake)
        sd->wake_pending = 1;
    pthread_mutex_unlock(&sd->mu);
    if (wake)
        (void)!write(sd->evfd, &one, sizeof(one));
}

static void side_drain(side_t *sd)
{
    msg_t *m, *next;
    uint64_t v;

    pthread_mutex_lock(&sd->mu);
    if (sd->wake_pending) {
        (void)!read(sd->evfd, &v, sizeof(v));
        sd->wake_pending = 0;
    }
    m = sd->head;
    sd->head = sd->tail = NULL;
    pthread_mutex_unlock(&sd->mu);
    for (; m; m = next) {
        next = m->next;
        for (size_t off = 0; off < m->len;) {
            ssize_t w = write(m->to->fd, m->data + off, m->len - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        free(m);
    }
}

/* One side's loop: reads from its sockets go to the other side's queue. Connections are
 * never closed in this mode (the bench keeps them for the whole run). */
static void side_loop(side_t *me, side_t *other, int lfd)
{
    struct epoll_event ev, evs[256];

    for (;;) {
        int n, have;

        pthread_mutex_lock(&me->mu);
        have = me->head != NULL;
        me->sleeping = !have;
        pthread_mutex_unlock(&me->mu);
        n = epoll_wait(me->ep, evs, 256, have ? 0 : -1);
        pthread_mutex_lock(&me->mu);
        me->sleeping = 0;
        pthread_mutex_unlock(&me->mu);
        for (int i = 0; i < n; i++) {
            half_t *h = evs[i].data.ptr;

            if (h == (void *)2)
                continue; /* the eventfd: drained below */
            if (h == NULL) {
                int c, u, one = 1;

                while ((c = accept4(lfd, NULL, NULL, 0)) >= 0) {
                    half_t *pair;

                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    if ((u = connect_upstream()) < 0) {
                        close(c);
                        continue;
                    }
                    pair = calloc(2, sizeof(*pair));
                    pair[0] = (half_t){.fd = c, .peer = &pair[1]};
                    pair[1] = (half_t){.fd = u, .peer = &pair[0]};
                    ev.events = EPOLLIN;
                    ev.data.ptr = &pair[0];
                    epoll_ctl(g_front.ep, EPOLL_CTL_ADD, c, &ev);
                    ev.data.ptr = &pair[1];
                    epoll_ctl(g_up.ep, EPOLL_CTL_ADD, u, &ev);
                }
                continue;
            }
            msg_t *m = malloc(sizeof(*m));
            ssize_t r = read(h->fd, m->data, sizeof(m->data));
            if (r <= 0) {
                free(m);
                if (r == 0 || (errno != EAGAIN && errno != EINTR))
                    epoll_ctl(me->ep, EPOLL_CTL_DEL, h->fd, NULL);
                continue;
            }
            m->len = (size_t)r;
            m->to = h->peer;
            side_post(other, m);
        }
        side_drain(me);
    }
}

static void *up_main(void *arg)
{
    (void)arg;
    side_loop(&g_up, &g_front, -1);
    return NULL;
}

static void handoff_main(void)
{
    int lfd = listen_socket();
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    pthread_t t;

    side_init(&g_front);
    side_init(&g_up);
    epoll_ctl(g_front.ep, EPOLL_CTL_ADD, lfd, &ev);
    pthread_create(&t, NULL, up_main, NULL);
    side_loop(&g_front, &g_up, lfd);
}

int main(int argc, char **argv)
{
    int threads = 1, handoff = 0;
    pthread_t t;

    signal(SIGPIPE, SIG_IGN);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--handoff") == 0)
            handoff = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--handoff") == 0) {
            i--;
            continue;
        }
        if (strcmp(argv[i], "--port") == 0)
            g_port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--upstream-port") == 0)
            g_up_port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
    }
    if (g_port <= 0 || g_up_port <= 0 || threads < 1) {
        fprintf(stderr, "usage: floor_proxy --port P --upstream-port U [--threads T | --handoff]\n");
        return 2;
    }
    if (handoff) {
        handoff_main();
        return 0;
    }
    for (int i = 1; i < threads; i++)
        pthread_create(&t, NULL, loop, NULL);
    loop(NULL);
    return 0;
}
