/*
 * reqlog.h - the record of every request fake-llama received (GET /__fake/log).
 *
 * A record is created when a request's headers arrive and updated until the request
 * ends (status, outcome, tokens, cancel time). Records are reference counted: the log
 * holds one reference and the request (and its stream) hold theirs, so POST
 * /__fake/reset or trimming the log to FL_LOG_MAX records never frees a record that a
 * running request still updates. All functions are thread-safe.
 */
#ifndef FL_REQLOG_H
#define FL_REQLOG_H

#include <stddef.h>

#include <jansson.h>

#define FL_LOG_MAX 10000

typedef enum {
    FL_OUT_IN_PROGRESS = 0,
    FL_OUT_COMPLETED,
    FL_OUT_CANCELLED,
    FL_OUT_ERROR,
    FL_OUT_DIED,
} fl_outcome_t;

typedef struct fl_rec fl_rec_t;

void fl_log_init(void);
void fl_log_free(void);

/* Appends a new record and returns it with a reference for the caller.
 * headers is stolen. */
fl_rec_t *fl_log_add(const char *method, const char *path, json_t *headers, long long t_start_us);
void fl_rec_ref(fl_rec_t *r);
void fl_rec_unref(fl_rec_t *r);

void fl_rec_set_body(fl_rec_t *r, const char *body, size_t len);
void fl_rec_set_status(fl_rec_t *r, int status);
/* Sets the outcome unless one other than "in_progress" was already set; a cancel also
 * stamps t_cancel_us with the current time. Returns 1 if this call set it. */
int fl_rec_finish(fl_rec_t *r, fl_outcome_t outcome);
void fl_rec_add_tokens(fl_rec_t *r, long n);
void fl_rec_set_tokens(fl_rec_t *r, long n);
fl_outcome_t fl_rec_outcome(fl_rec_t *r);
/* One line for the stderr access log. */
void fl_rec_describe(fl_rec_t *r, char *buf, size_t size);

/* The whole log as a JSON array (new reference). */
json_t *fl_log_json(void);
void fl_log_reset(void);

#endif /* FL_REQLOG_H */
