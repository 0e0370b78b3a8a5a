/*
 * reqlog.c - the bounded, reference-counted request log behind GET /__fake/log.
 */
#include "reqlog.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "util.h"

struct fl_rec {
    int refs;
    long long seq;
    char *method;
    char *path;
    json_t *headers;
    char *body;
    size_t body_len;
    int status;           /* 0 = none sent yet */
    fl_outcome_t outcome;
    long tokens_sent;
    long long t_start_us;
    long long t_cancel_us; /* 0 = not cancelled */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static fl_rec_t **recs;   /* oldest first */
static size_t n_recs;
static size_t cap_recs;
static long long next_seq = 1;

void fl_log_init(void)
{
}

static void rec_free(fl_rec_t *r)
{
    free(r->method);
    free(r->path);
    json_decref(r->headers);
    free(r->body);
    free(r);
}

/* Drops a reference; the caller holds mu. */
static void unref_locked(fl_rec_t *r)
{
    if (--r->refs == 0)
        rec_free(r);
}

void fl_log_reset(void)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n_recs; i++)
        unref_locked(recs[i]);
    n_recs = 0;
    pthread_mutex_unlock(&mu);
}

void fl_log_free(void)
{
    fl_log_reset();
    free(recs);
    recs = NULL;
    cap_recs = 0;
}

fl_rec_t *fl_log_add(const char *method, const char *path, json_t *headers, long long t_start_us)
{
    fl_rec_t *r = fl_xcalloc(1, sizeof(*r));

    r->method = fl_xstrdup(method);
    r->path = fl_xstrdup(path);
    r->headers = headers;
    r->body = fl_xstrdup("");
    r->t_start_us = t_start_us;
    r->refs = 2; /* the log's and the caller's */

    pthread_mutex_lock(&mu);
    r->seq = next_seq++;
    if (n_recs == FL_LOG_MAX) {
        unref_locked(recs[0]);
        memmove(recs, recs + 1, (n_recs - 1) * sizeof(*recs));
        n_recs--;
    }
    if (n_recs == cap_recs) {
        cap_recs = cap_recs ? cap_recs * 2 : 64;
        recs = fl_xrealloc(recs, cap_recs * sizeof(*recs));
    }
    recs[n_recs++] = r;
    pthread_mutex_unlock(&mu);
    return r;
}

void fl_rec_ref(fl_rec_t *r)
{
    pthread_mutex_lock(&mu);
    r->refs++;
    pthread_mutex_unlock(&mu);
}

void fl_rec_unref(fl_rec_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&mu);
    unref_locked(r);
    pthread_mutex_unlock(&mu);
}

void fl_rec_set_body(fl_rec_t *r, const char *body, size_t len)
{
    char *copy = fl_xstrndup(body, len);

    pthread_mutex_lock(&mu);
    free(r->body);
    r->body = copy;
    r->body_len = len;
    pthread_mutex_unlock(&mu);
}

void fl_rec_set_status(fl_rec_t *r, int status)
{
    pthread_mutex_lock(&mu);
    r->status = status;
    pthread_mutex_unlock(&mu);
}

int fl_rec_finish(fl_rec_t *r, fl_outcome_t outcome)
{
    int set = 0;
    long long now = fl_now_us();

    pthread_mutex_lock(&mu);
    if (r->outcome == FL_OUT_IN_PROGRESS) {
        r->outcome = outcome;
        if (outcome == FL_OUT_CANCELLED)
            r->t_cancel_us = now;
        set = 1;
    }
    pthread_mutex_unlock(&mu);
    return set;
}

void fl_rec_add_tokens(fl_rec_t *r, long n)
{
    pthread_mutex_lock(&mu);
    r->tokens_sent += n;
    pthread_mutex_unlock(&mu);
}

void fl_rec_set_tokens(fl_rec_t *r, long n)
{
    pthread_mutex_lock(&mu);
    r->tokens_sent = n;
    pthread_mutex_unlock(&mu);
}

fl_outcome_t fl_rec_outcome(fl_rec_t *r)
{
    pthread_mutex_lock(&mu);
    fl_outcome_t o = r->outcome;
    pthread_mutex_unlock(&mu);
    return o;
}

static const char *outcome_str(fl_outcome_t o)
{
    switch (o) {
    case FL_OUT_COMPLETED: return "completed";
    case FL_OUT_CANCELLED: return "cancelled";
    case FL_OUT_ERROR: return "error";
    case FL_OUT_DIED: return "died";
    default: return "in_progress";
    }
}

void fl_rec_describe(fl_rec_t *r, char *buf, size_t size)
{
    pthread_mutex_lock(&mu);
    snprintf(buf, size, "#%lld %s %s -> %d %s, %ld tokens", r->seq, r->method, r->path,
             r->status, outcome_str(r->outcome), r->tokens_sent);
    pthread_mutex_unlock(&mu);
}

json_t *fl_log_json(void)
{
    json_t *a = json_array();

    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n_recs; i++) {
        fl_rec_t *r = recs[i];
        json_t *o = json_object();
        json_object_set_new(o, "seq", json_integer(r->seq));
        json_object_set_new(o, "method", json_string(r->method));
        json_object_set_new(o, "path", fl_json_bytes(r->path, strlen(r->path)));
        json_object_set(o, "headers", r->headers);
        json_object_set_new(o, "body", fl_json_bytes(r->body, r->body_len));
        json_object_set_new(o, "status", r->status ? json_integer(r->status) : json_null());
        json_object_set_new(o, "outcome", json_string(outcome_str(r->outcome)));
        json_object_set_new(o, "tokens_sent", json_integer(r->tokens_sent));
        json_object_set_new(o, "t_start_us", json_integer(r->t_start_us));
        json_object_set_new(o, "t_cancel_us",
                            r->t_cancel_us ? json_integer(r->t_cancel_us) : json_null());
        json_array_append_new(a, o);
    }
    pthread_mutex_unlock(&mu);
    return a;
}
