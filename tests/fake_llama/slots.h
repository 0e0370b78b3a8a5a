/*
 * slots.h - the fake server's generation slots (--parallel) and cancel-aware waiting.
 *
 * Like llama-server, a request that finds no idle slot is deferred: it waits, in FIFO
 * order and without any response bytes, until enough slots are free. Every wait in
 * fake-llama (slot queue, token delays, stalls) goes through fl_wait_watch() so that a
 * client disconnect (POLLRDHUP/HUP/ERR on the connection fd) or process shutdown is
 * noticed at once. All functions are thread-safe.
 */
#ifndef FL_SLOTS_H
#define FL_SLOTS_H

#include <jansson.h>

#define FL_MAX_SLOTS 64

enum {
    FL_WAIT_OK = 0,       /* the time passed / the slots were taken */
    FL_WAIT_GONE = 1,     /* the client disconnected */
    FL_WAIT_SHUTDOWN = 2, /* the process is shutting down */
};

/* n_slots slots of n_ctx tokens; shutdown_fd becomes readable at shutdown. */
void fl_slots_init(int n_slots, int n_ctx, int shutdown_fd);
void fl_slots_free(void);

/* Waits ms milliseconds (0 = just check) watching fd; returns a FL_WAIT_* code. */
int fl_wait_watch(int fd, int ms);

/* Takes `need` slots (FIFO), writing their ids to ids[]. Returns a FL_WAIT_* code. */
int fl_slots_acquire(int need, int fd, int n_prompt, int *ids);
void fl_slots_release(const int *ids, int n);
/* Progress shown by GET /slots. */
void fl_slots_progress(int id, int n_decoded);

/* GET /slots body (new reference). */
json_t *fl_slots_json(void);

#endif /* FL_SLOTS_H */
