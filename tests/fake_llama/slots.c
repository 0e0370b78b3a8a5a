/*
 * slots.c - slot accounting with a FIFO wait queue, and the poll()-based waits.
 */
#include "slots.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util.h"

typedef struct waiter {
    struct waiter *next;
    int efd;
    int need;
} waiter_t;

typedef struct slot {
    int busy;
    int used;        /* has processed a task */
    int id_task;
    int n_prompt;
    int n_decoded;
} slot_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static slot_t slots[FL_MAX_SLOTS];
static int n_slots_total;
static int n_free;
static int slot_ctx;
static int next_task;
static int shut_fd = -1;
static waiter_t *q_head;
static waiter_t *q_tail;

void fl_slots_init(int n_slots, int n_ctx, int shutdown_fd)
{
    n_slots_total = n_slots;
    n_free = n_slots;
    slot_ctx = n_ctx;
    shut_fd = shutdown_fd;
}

void fl_slots_free(void)
{
}

int fl_wait_watch(int fd, int ms)
{
    long long deadline = fl_now_us() + (long long)ms * 1000;

    for (;;) {
        struct pollfd p[2] = {
            { .fd = fd, .events = POLLRDHUP },
            { .fd = shut_fd, .events = POLLIN },
        };
        long long left = (deadline - fl_now_us() + 999) / 1000;
        if (left < 0)
            left = 0;
        int rc = poll(p, 2, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc > 0) {
            if (p[1].revents)
                return FL_WAIT_SHUTDOWN;
            if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
                return FL_WAIT_GONE;
        }
        if (fl_now_us() >= deadline)
            return FL_WAIT_OK;
    }
}

/* Takes slots for the caller; mu held and n_free >= need. */
static void take_locked(int need, int n_prompt, int *ids)
{
    int k = 0;

    for (int i = 0; i < n_slots_total && k < need; i++) {
        if (slots[i].busy)
            continue;
        slots[i].busy = 1;
        slots[i].used = 1;
        slots[i].id_task = next_task++;
        slots[i].n_prompt = n_prompt;
        slots[i].n_decoded = 0;
        ids[k++] = i;
    }
    n_free -= need;
}

static void wake_head_locked(void)
{
    if (q_head) {
        uint64_t one = 1;
        ssize_t rc = write(q_head->efd, &one, sizeof(one));
        (void)rc;
    }
}

static void dequeue_locked(waiter_t *w)
{
    waiter_t **pp = &q_head;
    waiter_t *prev = NULL;

    while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = w->next;
        if (q_tail == w)
            q_tail = prev;
    }
}

int fl_slots_acquire(int need, int fd, int n_prompt, int *ids)
{
    waiter_t w = { .next = NULL, .efd = -1, .need = need };
    int rc = FL_WAIT_OK;

    pthread_mutex_lock(&mu);
    if (!q_head && n_free >= need) {
        take_locked(need, n_prompt, ids);
        pthread_mutex_unlock(&mu);
        return FL_WAIT_OK;
    }
    w.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w.efd < 0)
        abort();
    if (q_tail)
        q_tail->next = &w;
    else
        q_head = &w;
    q_tail = &w;

    for (;;) {
        if (q_head == &w && n_free >= need) {
            take_locked(need, n_prompt, ids);
            dequeue_locked(&w);
            wake_head_locked();
            break;
        }
        pthread_mutex_unlock(&mu);

        struct pollfd p[3] = {
            { .fd = fd, .events = POLLRDHUP },
            { .fd = shut_fd, .events = POLLIN },
            { .fd = w.efd, .events = POLLIN },
        };
        int prc = poll(p, 3, -1);
        pthread_mutex_lock(&mu);
        if (prc < 0 && errno == EINTR)
            continue;
        if (prc > 0 && p[1].revents) {
            rc = FL_WAIT_SHUTDOWN;
        } else if (prc > 0 && (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) {
            rc = FL_WAIT_GONE;
        } else if (prc > 0 && p[2].revents) {
            uint64_t v;
            ssize_t n = read(w.efd, &v, sizeof(v));
            (void)n;
            continue;
        } else {
            continue;
        }
        dequeue_locked(&w);
        wake_head_locked();
        break;
    }
    pthread_mutex_unlock(&mu);
    close(w.efd);
    return rc;
}

void fl_slots_release(const int *ids, int n)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n; i++) {
        if (ids[i] >= 0 && ids[i] < n_slots_total && slots[ids[i]].busy) {
            slots[ids[i]].busy = 0;
            n_free++;
        }
    }
    wake_head_locked();
    pthread_mutex_unlock(&mu);
}

void fl_slots_progress(int id, int n_decoded)
{
    pthread_mutex_lock(&mu);
    if (id >= 0 && id < n_slots_total)
        slots[id].n_decoded = n_decoded;
    pthread_mutex_unlock(&mu);
}

json_t *fl_slots_json(void)
{
    json_t *a = json_array();

    pthread_mutex_lock(&mu);
    for (int i = 0; i < n_slots_total; i++) {
        slot_t *s = &slots[i];
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(i));
        json_object_set_new(o, "n_ctx", json_integer(slot_ctx));
        json_object_set_new(o, "speculative", json_false());
        json_object_set_new(o, "is_processing", json_boolean(s->busy));
        if (s->used) {
            json_t *nt = json_object();
            json_object_set_new(o, "id_task", json_integer(s->id_task));
            json_object_set_new(o, "n_prompt_tokens", json_integer(s->n_prompt));
            json_object_set_new(o, "n_prompt_tokens_processed", json_integer(s->n_prompt));
            json_object_set_new(o, "n_prompt_tokens_cache", json_integer(0));
            json_object_set_new(nt, "has_next_token", json_boolean(s->busy));
            json_object_set_new(nt, "has_new_line", json_false());
            json_object_set_new(nt, "n_remain", json_integer(-1));
            json_object_set_new(nt, "n_decoded", json_integer(s->n_decoded));
            json_t *arr = json_array();
            json_array_append_new(arr, nt);
            json_object_set_new(o, "next_token", arr);
        }
        json_array_append_new(a, o);
    }
    pthread_mutex_unlock(&mu);
    return a;
}
