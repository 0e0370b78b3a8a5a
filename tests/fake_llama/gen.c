/*
 * gen.c - token generation and llama-server's per-token stop/UTF-8 processing.
 */
#include "gen.h"

#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "vocab.h"

#define NPOS ((size_t)-1)

void fl_gen_init(fl_gen_t *g, const fl_gen_params_t *p)
{
    memset(g, 0, sizeof(*g));
    g->p = *p;
    g->rng = p->seed ? p->seed : 0x2545F4914F6CDD1DULL;
    g->has_next = 1;
    g->stop_word = -1;
    if (p->n_predict == 0 || (p->scripted && p->n_script == 0)) {
        g->has_next = 0;
        g->stop = FL_STOP_LIMIT;
    }
}

static void item_free(fl_item_t *it)
{
    free(it->text);
    free(it->top_id);
    free(it->top_lp);
}

void fl_gen_free(fl_gen_t *g)
{
    for (size_t i = 0; i < g->n_items; i++)
        item_free(&g->items[i]);
    free(g->items);
    fl_buf_free(&g->text);
    fl_toks_free(&g->tokens);
    memset(g, 0, sizeof(*g));
}

void fl_step_clear(fl_step_t *st)
{
    fl_buf_free(&st->send);
    memset(st, 0, sizeof(*st));
}

static int sample(fl_gen_t *g)
{
    if (g->p.scripted)
        return g->p.script[g->script_pos++];
    size_t n;
    const int *pool = fl_vocab_pool(&n);
    return pool[fl_rng_next(&g->rng) % n];
}

/* text.find(word, from) */
static size_t find_from(const char *s, size_t n, const char *w, size_t wl, size_t from)
{
    if (from > n)
        return NPOS;
    if (wl == 0)
        return from;
    for (size_t i = from; i + wl <= n; i++)
        if (memcmp(s + i, w, wl) == 0)
            return i;
    return NPOS;
}

/* string_find_partial_stop() from common/common.cpp */
static size_t find_partial(const char *s, size_t n, const char *w, size_t wl)
{
    if (n == 0 || wl == 0)
        return NPOS;
    char last = s[n - 1];
    for (long long ci = (long long)wl - 1; ci >= 0; ci--) {
        if (w[ci] != last)
            continue;
        size_t pl = (size_t)ci + 1;
        if (pl <= n && memcmp(s + n - pl, w, pl) == 0)
            return n - (size_t)ci - 1;
    }
    return NPOS;
}

/* server_slot::find_stopping_strings() */
static size_t find_stopping_strings(fl_gen_t *g, const char *s, size_t n, size_t last_len,
                                    int full)
{
    size_t stop_pos = NPOS;

    for (size_t k = 0; k < g->p.n_stops; k++) {
        const char *w = g->p.stops[k];
        size_t wl = g->p.stop_len[k];
        size_t pos;

        if (full) {
            size_t tmp = wl + last_len;
            size_t from = n > tmp ? n - tmp : 0;
            pos = find_from(s, n, w, wl, from);
        } else {
            pos = find_partial(s, n, w, wl);
        }
        if (pos != NPOS && (stop_pos == NPOS || pos < stop_pos)) {
            if (full) {
                g->stop = FL_STOP_WORD;
                g->stop_word = (int)k;
                g->has_next = 0;
            }
            stop_pos = pos;
        }
    }
    return stop_pos;
}

static double unit(uint64_t *r)
{
    return (double)(fl_rng_next(r) >> 11) / 9007199254740992.0;
}

static int top_has(const fl_item_t *it, int id)
{
    for (int i = 0; i < it->n_top; i++)
        if (it->top_id[i] == id)
            return 1;
    return 0;
}

/* Deterministic logprobs: a function of the seed, the position and the token. */
static void make_item(fl_gen_t *g, int tok, const char *text, size_t len, fl_item_t *it)
{
    uint64_t r = fl_fnv1a(g->p.seed, &g->n_decoded, sizeof(g->n_decoded));
    r = fl_fnv1a(r, &tok, sizeof(tok));
    int ordinary = tok >= FL_WORD_BASE;
    int n = g->p.n_probs;
    int nv = fl_vocab_size();
    double lp;

    memset(it, 0, sizeof(*it));
    it->id = tok;
    it->text = fl_xstrndup(text, len);
    it->text_len = len;
    if (n > nv)
        n = nv;
    it->top_id = fl_xcalloc((size_t)n, sizeof(int));
    it->top_lp = fl_xcalloc((size_t)n, sizeof(float));

    if (ordinary) {
        lp = -(0.05 + unit(&r) * 2.5);
        it->logprob = (float)lp;
        it->top_id[0] = tok;
        it->top_lp[0] = it->logprob;
        it->n_top = 1;
    } else {
        it->logprob = (float)-(8.0 + unit(&r) * 6.0);
        lp = -(0.3 + unit(&r) * 1.5);
    }
    size_t np;
    const int *pool = fl_vocab_pool(&np);
    int tries = 0;
    int next_seq = FL_WORD_BASE;
    while (it->n_top < n) {
        int cand;
        if (tries < 4 * n) {
            cand = pool[fl_rng_next(&r) % np];
            tries++;
        } else {
            /* pool exhausted: walk the whole vocabulary in order */
            cand = next_seq;
            next_seq = (next_seq + 1) % nv;
        }
        if (cand == tok || top_has(it, cand))
            continue;
        if (it->n_top > 0)
            lp -= 0.05 + unit(&r) * 0.6; /* each candidate is less likely than the last */
        it->top_id[it->n_top] = cand;
        it->top_lp[it->n_top] = (float)lp;
        it->n_top++;
    }
}

void fl_gen_step(fl_gen_t *g, fl_step_t *st)
{
    memset(st, 0, sizeof(*st));

    int tok = sample(g);
    size_t plen;
    const char *piece = fl_tok_piece(tok, 0, &plen);
    int eog = fl_tok_is_eog(tok);

    g->n_decoded++;
    fl_toks_push(&g->tokens, tok);
    fl_buf_add(&g->text, piece, plen);
    g->has_next = 1;

    int incomplete = fl_utf8_complete_prefix(g->text.p, g->text.n) < g->text.n;
    st->id = tok;
    st->incomplete = incomplete;

    if (!incomplete) {
        size_t pos = g->n_sent < g->text.n ? g->n_sent : g->text.n;
        int send = 1;
        size_t sp = find_stopping_strings(g, g->text.p + pos, g->text.n - pos, plen, 1);

        if (sp != NPOS) {
            fl_buf_truncate(&g->text, pos + sp);
            pos = g->n_sent < g->text.n ? g->n_sent : g->text.n;
        } else if (g->has_next && !eog) {
            sp = find_stopping_strings(g, g->text.p + pos, g->text.n - pos, plen, 0);
            send = sp == NPOS;
        }
        if (send) {
            fl_buf_add(&st->send, g->text.p + pos, g->text.n - pos);
            g->n_sent += g->text.n - pos;
        }
        if (g->p.n_probs > 0) {
            if (g->n_items == g->cap_items) {
                g->cap_items = g->cap_items ? g->cap_items * 2 : 16;
                g->items = fl_xrealloc(g->items, g->cap_items * sizeof(fl_item_t));
            }
            make_item(g, tok, st->send.p ? st->send.p : "", st->send.n, &g->items[g->n_items]);
            st->item = &g->items[g->n_items];
            st->has_item = 1;
            g->n_items++;
        }
        st->stop_now = !g->has_next;
    }

    if (incomplete)
        g->has_next = 1;
    if (g->has_next && g->p.n_prompt + g->n_decoded >= g->p.n_ctx) {
        g->truncated = 1;
        g->stop = FL_STOP_LIMIT;
        g->has_next = 0;
    }
    if (g->has_next && g->p.n_predict >= 0 && g->n_decoded >= g->p.n_predict) {
        g->stop = FL_STOP_LIMIT;
        g->has_next = 0;
    }
    if (g->has_next && g->p.scripted && g->script_pos >= g->p.n_script) {
        g->stop = FL_STOP_LIMIT;
        g->has_next = 0;
    }
    if (eog) {
        g->stop = FL_STOP_EOS;
        g->has_next = 0;
    }
}

size_t fl_gen_items_final(const fl_gen_t *g)
{
    size_t n = g->n_items;

    if (g->stop == FL_STOP_WORD && g->stop_word >= 0) {
        fl_toks_t t = {0};
        fl_tokenize(g->p.stops[g->stop_word], g->p.stop_len[g->stop_word], 0, 0, &t);
        n -= t.n < n ? t.n : n;
        fl_toks_free(&t);
    }
    return n;
}

static json_t *bytes_json(const char *s, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer((unsigned char)s[i]));
    return a;
}

json_t *fl_item_json(const fl_item_t *it)
{
    json_t *o = json_object();
    json_t *top = json_array();

    json_object_set_new(o, "id", json_integer(it->id));
    json_object_set_new(o, "token",
                        fl_json_bytes(it->text, fl_utf8_complete_prefix(it->text, it->text_len)));
    json_object_set_new(o, "bytes", bytes_json(it->text, it->text_len));
    json_object_set_new(o, "logprob", fl_json_f32(it->logprob));
    for (int i = 0; i < it->n_top; i++) {
        size_t l;
        const char *p = fl_tok_piece(it->top_id[i], 0, &l);
        json_t *c = json_object();
        json_object_set_new(c, "id", json_integer(it->top_id[i]));
        json_object_set_new(c, "token", fl_json_bytes(p, fl_utf8_complete_prefix(p, l)));
        json_object_set_new(c, "bytes", bytes_json(p, l));
        json_object_set_new(c, "logprob", fl_json_f32(it->top_lp[i]));
        json_array_append_new(top, c);
    }
    json_object_set_new(o, "top_logprobs", top);
    return o;
}

const char *fl_stop_type_str(fl_stop_t s)
{
    switch (s) {
    case FL_STOP_EOS: return "eos";
    case FL_STOP_WORD: return "word";
    case FL_STOP_LIMIT: return "limit";
    default: return "none";
    }
}
