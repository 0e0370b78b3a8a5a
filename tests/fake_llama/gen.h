/*
 * gen.h - one generated choice: token sampling (pseudo-random or scripted), and
 * llama-server's process_token() bookkeeping: incomplete UTF-8 hold-back, stop-string
 * full and partial matching with held-back text, limits, EOG, and logprob items.
 *
 * The algorithm follows server-context.cpp (see llama-server-api.md section 5):
 * text_to_send of each token is what a stream would emit for it. A fl_gen_t is used by
 * one thread at a time.
 */
#ifndef FL_GEN_H
#define FL_GEN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util.h"

typedef enum {
    FL_STOP_NONE = 0,
    FL_STOP_EOS,
    FL_STOP_WORD,
    FL_STOP_LIMIT,
} fl_stop_t;

/* A logprobs item: the sampled id, its text_to_send, and the top candidates. */
typedef struct fl_item {
    int id;
    float logprob;
    char *text;
    size_t text_len;
    int n_top;
    int *top_id;
    float *top_lp;
} fl_item_t;

typedef struct fl_gen_params {
    const int *script;   /* borrowed; used when scripted */
    size_t n_script;
    int scripted;
    uint64_t seed;
    int n_predict;       /* -1 = until the context is full */
    int n_prompt;
    int n_ctx;
    const char *const *stops; /* borrowed NUL-free byte strings */
    const size_t *stop_len;
    size_t n_stops;
    int n_probs;         /* 0 = no logprob items */
} fl_gen_params_t;

typedef struct fl_gen {
    fl_gen_params_t p;
    uint64_t rng;
    size_t script_pos;
    fl_buf_t text;         /* generated_text (special tokens render as "") */
    size_t n_sent;         /* bytes of text already sent */
    fl_toks_t tokens;      /* every generated id */
    int n_decoded;
    int has_next;
    fl_stop_t stop;
    int stop_word;         /* index into p.stops when stop == FL_STOP_WORD */
    int truncated;
    fl_item_t *items;      /* one per non-incomplete token when n_probs > 0 */
    size_t n_items;
    size_t cap_items;
} fl_gen_t;

/* The result of one processed token. */
typedef struct fl_step {
    int id;
    int incomplete;        /* ends mid-UTF-8: no partial result at all */
    int stop_now;          /* a stop string was hit by this token (partial carries timings) */
    fl_buf_t send;         /* text_to_send */
    int has_item;
    const fl_item_t *item; /* borrowed from the generator; valid until the next step */
} fl_step_t;

void fl_gen_init(fl_gen_t *g, const fl_gen_params_t *p);
/* Processes the next token. Only call while g->has_next. */
void fl_gen_step(fl_gen_t *g, fl_step_t *st);
void fl_step_clear(fl_step_t *st);
void fl_gen_free(fl_gen_t *g);

/* Number of items a non-stream response reports: all of them, minus the tokenized
 * length of the stop word after a stop-word stop. */
size_t fl_gen_items_final(const fl_gen_t *g);

/* The item as llama-server prints it ({"id","token","bytes","logprob","top_logprobs"}). */
json_t *fl_item_json(const fl_item_t *it);

const char *fl_stop_type_str(fl_stop_t s);

#endif /* FL_GEN_H */
