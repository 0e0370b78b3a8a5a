/*
 * tokids_cost.c - CPU cost per streamed token of token-ID recovery (return_token_ids), against
 * the plain relay, measured in-process on pre-generated llama-server chunks.
 *
 *   tokids_cost [--tokens N] [--vocab V] [--stream-len L] [--repeats R] [--gap-every K]
 *               [--seed S]
 *
 * A vocabulary of V pieces (default 32000: 3 specials, 256 byte tokens, then word pieces made
 * deterministically from Latin syllables with and without a leading space, Cyrillic, CJK,
 * digits and punctuation, all distinct) is rendered as llama-server's `/tokenize` answer and
 * built with gw_vocab_from_json, as the gateway's cache does (timed once, reported).
 *
 * N tokens (default 200000) are generated as N/L chat streams of L tokens (default 500), in
 * two renderings of the same text:
 *  - token-ID: what llama-server sends for the upstream body the gateway writes (logprobs with
 *    top_logprobs 1, timings_per_token, verbose, include_usage): a role chunk, one chunk per
 *    token with its logprobs item {"id","token","bytes","logprob","top_logprobs":[1 entry]}
 *    and `timings` (predicted_n so far), a finish chunk with timings and __verbose, the usage
 *    chunk, [DONE] - the shapes of tests/fake_llama with timings_per_token and of
 *    reference/llama-server-samples;
 *  - plain: what llama-server sends for the client's own request: the same chunks without
 *    logprobs and per-token timings (timings on the finish chunk only), [DONE].
 * With --gap-every K, every K-th token is held back and released with the next one (one item
 * for two tokens, predicted_n +2), so the recovery path (gw_vocab_split) runs too.
 *
 * Three measurements, each R times (default 5), CPU time by CLOCK_PROCESS_CPUTIME_ID, median
 * reported per generated token:
 *  1. plain relay: gw_sse_feed over the plain streams, each event through gw_oai_set_model
 *     into a stage buffer (the relay's per-event work on the fast path);
 *  2. plain relay over the token-ID streams (the cost of the bigger chunks alone);
 *  3. token-ID path: gw_sse_feed over the token-ID streams, each event through
 *     gw_tok_resp_event; one gw_tok_resp_new/free per stream.
 * The stage buffer is reset after every event, as the relay drains it to the client.
 * Before timing, the token-ID output of the first streams is checked: the token_ids it
 * carries must be exactly the generated IDs, and every finish chunk complete.
 *
 * Prints a short report and one JSON line (last line of stdout). Single-threaded.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/sse.h"
#include "core/vocab.h"
#include "openai/rewrite.h"
#include "openai/tokids.h"

#define BIG ((size_t)-1 / 2)
#define N_SPECIAL 3
#define FIRST_WORD (N_SPECIAL + 256)
#define PROMPT_N 12

typedef struct opts {
    size_t tokens, vocab, stream_len, repeats, gap_every;
    uint64_t seed;
} opts_t;

/* ---------------------------------------------------------------------------------
 * Deterministic randomness
 * ------------------------------------------------------------------------------- */

static uint64_t rng;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

static double unit(void)
{
    return (double)(rnd() >> 11) / 9007199254740992.0;
}

static void die(const char *what)
{
    fprintf(stderr, "tokids_cost: %s\n", what);
    exit(1);
}

static void add(gw_buf_t *b, const void *p, size_t n)
{
    if (gw_buf_add(b, p, n) != GW_OK)
        die("out of memory");
}

static void addf(gw_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(gw_buf_t *b, const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        die("format overflow");
    add(b, tmp, (size_t)n);
}

#define ADDL(b, lit) add((b), (lit), sizeof(lit) - 1)

static void add_jstr(gw_buf_t *b, const char *p, size_t n)
{
    if (gw_buf_add_json_str(b, p, n) != GW_OK)
        die("out of memory");
}

/* ---------------------------------------------------------------------------------
 * The vocabulary
 * ------------------------------------------------------------------------------- */

typedef struct pieces {
    char **p;
    size_t *len;
    size_t n;
} pieces_t;

static size_t utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* One candidate word piece (valid UTF-8, 1..40 bytes). */
static size_t gen_word(char *buf)
{
    static const char *const cons[] = {"b", "c", "d", "f", "g", "h", "k", "l", "m", "n",
                                       "p", "r", "s", "t", "v", "w", "st", "th", "ch", "tr"};
    static const char *const vow[] = {"a", "e", "i", "o", "u", "ea", "ou", "io"};
    static const char *const punct[] = {".", ",", "!", "?", ":", ";", "\n", "\n\n", " (", ")",
                                        " \"", "\"", "'s", " -", "...", " =", "()", "{", "}"};
    unsigned r = (unsigned)(rnd() % 100);
    size_t n = 0, k, i;

    if (r < 4) {
        if (rnd() % 2) {
            const char *p = punct[rnd() % (sizeof(punct) / sizeof(punct[0]))];

            n = strlen(p);
            memcpy(buf, p, n);
        } else {
            if (rnd() % 2)
                buf[n++] = ' ';
            for (k = 1 + rnd() % 3, i = 0; i < k; i++)
                buf[n++] = (char)('0' + rnd() % 10);
        }
        return n;
    }
    if (rnd() % 100 < 60)
        buf[n++] = ' ';
    if (r < 10) { /* Cyrillic */
        for (k = 1 + rnd() % 4, i = 0; i < k; i++)
            n += utf8(0x430 + (uint32_t)(rnd() % 32), buf + n);
        return n;
    }
    if (r < 13) { /* CJK */
        for (k = 1 + rnd() % 2, i = 0; i < k; i++)
            n += utf8(0x4E00 + (uint32_t)(rnd() % 20000), buf + n);
        return n;
    }
    for (k = 1 + rnd() % 4, i = 0; i < k; i++) {
        const char *c = cons[rnd() % 20], *v = vow[rnd() % 8];

        if (rnd() % 4) {
            memcpy(buf + n, c, strlen(c));
            n += strlen(c);
        }
        memcpy(buf + n, v, strlen(v));
        n += strlen(v);
        if (rnd() % 3 == 0) {
            c = cons[rnd() % 20];
            memcpy(buf + n, c, strlen(c));
            n += strlen(c);
        }
    }
    if (rnd() % 10 == 0) {
        size_t at = buf[0] == ' ' ? 1 : 0;

        if (buf[at] >= 'a' && buf[at] <= 'z')
            buf[at] = (char)(buf[at] - 32);
    }
    return n;
}

static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    while (n--)
        h = (h ^ (unsigned char)*p++) * 1099511628211ull;
    return h;
}

static void gen_vocab(size_t n, pieces_t *v)
{
    size_t cap = 16, i, *set, mask;

    while (cap < 4 * n)
        cap *= 2;
    mask = cap - 1;
    set = calloc(cap, sizeof(size_t)); /* id + 1, 0 = empty */
    v->p = calloc(n, sizeof(char *));
    v->len = calloc(n, sizeof(size_t));
    if (set == NULL || v->p == NULL || v->len == NULL)
        die("out of memory");
    v->n = n;
    for (i = 0; i < n; i++) {
        char buf[64];
        size_t len, b;

        if (i == 0)
            len = (size_t)snprintf(buf, sizeof(buf), "<unk>");
        else if (i == 1)
            len = (size_t)snprintf(buf, sizeof(buf), "<s>");
        else if (i == 2)
            len = (size_t)snprintf(buf, sizeof(buf), "</s>");
        else if (i < FIRST_WORD) {
            buf[0] = (char)(i - N_SPECIAL);
            len = 1;
        } else {
            len = gen_word(buf);
        }
        for (b = fnv(buf, len) & mask; set[b]; b = (b + 1) & mask) {
            size_t j = set[b] - 1;

            if (v->len[j] == len && memcmp(v->p[j], buf, len) == 0)
                break;
        }
        if (set[b]) { /* a duplicate word: draw again */
            i--;
            continue;
        }
        set[b] = i + 1;
        v->p[i] = malloc(len + 1);
        if (v->p[i] == NULL)
            die("out of memory");
        memcpy(v->p[i], buf, len);
        v->len[i] = len;
    }
    free(set);
}

/* llama-server's /tokenize answer with pieces: strings, or byte arrays for invalid UTF-8. */
static void vocab_json(const pieces_t *v, gw_buf_t *out)
{
    size_t i, k;

    ADDL(out, "{\"tokens\":[");
    for (i = 0; i < v->n; i++) {
        addf(out, "%s{\"id\":%zu,\"piece\":", i ? "," : "", i);
        if (i >= N_SPECIAL && i < FIRST_WORD && (unsigned char)v->p[i][0] >= 0x80) {
            add(out, "[", 1);
            for (k = 0; k < v->len[i]; k++)
                addf(out, "%s%u", k ? "," : "", (unsigned char)v->p[i][k]);
            add(out, "]", 1);
        } else {
            add_jstr(out, v->p[i], v->len[i]);
        }
        add(out, "}", 1);
    }
    add(out, "]}", 2);
}

/* ---------------------------------------------------------------------------------
 * Streams
 * ------------------------------------------------------------------------------- */

#define HEAD "data: {\"choices\":["
#define TAIL                                                                                 \
    "],\"created\":1795919497,\"id\":\"chatcmpl-CS1Xb9NouqIMuLefkI3LaKRjQtAv63D7\","       \
    "\"model\":\"models/tiny-llama.gguf\",\"system_fingerprint\":\"b10587-3f545becc\","     \
    "\"object\":\"chat.completion.chunk\""
#define ROLE "{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}"
#define VERBOSE                                                                              \
    ",\"__verbose\":{\"index\":0,\"content\":\"\",\"tokens\":[],\"id_slot\":1,\"stop\":true,"  \
    "\"model\":\"models/tiny-llama.gguf\",\"tokens_predicted\":%zu,\"tokens_evaluated\":12,"  \
    "\"generation_settings\":{\"seed\":4294967295,\"temperature\":0.800000011920929,"        \
    "\"dynatemp_range\":0.0,\"dynatemp_exponent\":1.0,\"top_k\":40,"                         \
    "\"top_p\":0.949999988079071,\"min_p\":0.05000000074505806,\"top_n_sigma\":-1.0,"        \
    "\"xtc_probability\":0.0,\"xtc_threshold\":0.10000000149011612,\"typical_p\":1.0,"       \
    "\"repeat_last_n\":64,\"repeat_penalty\":1.0,\"presence_penalty\":0.0,"                   \
    "\"frequency_penalty\":0.0,\"dry_multiplier\":0.0,\"dry_base\":1.75,"                     \
    "\"dry_allowed_length\":2,\"dry_penalty_last_n\":64,"                                     \
    "\"dry_sequence_breakers\":[\"\\n\",\":\",\"\\\"\",\"*\"],\"mirostat\":0,"                \
    "\"mirostat_tau\":5.0,\"mirostat_eta\":0.10000000149011612,\"stop\":[],"                  \
    "\"max_tokens\":%zu,\"n_predict\":%zu,\"n_keep\":0,\"n_discard\":0,\"ignore_eos\":false," \
    "\"stream\":true,\"logit_bias\":[],\"n_probs\":1,\"min_keep\":0,\"grammar\":\"\","        \
    "\"grammar_lazy\":false,\"grammar_triggers\":[],\"preserved_tokens\":[],"                 \
    "\"chat_format\":\"peg-native\",\"reasoning_format\":\"deepseek\","                       \
    "\"reasoning_in_content\":false,\"generation_prompt\":\"\",\"samplers\":[\"penalties\","  \
    "\"dry\",\"top_n_sigma\",\"top_k\",\"typ_p\",\"top_p\",\"min_p\",\"xtc\","                \
    "\"temperature\"],\"speculative.types\":\"none\",\"timings_per_token\":true,"             \
    "\"post_sampling_probs\":false,\"backend_sampling\":false,\"lora\":[]},"                  \
    "\"prompt\":\"<s><|user|> Hello there<|end|><|assistant|>\",\"has_new_line\":false,"     \
    "\"truncated\":false,\"stop_type\":\"limit\",\"stopping_word\":\"\",\"tokens_cached\":%zu}"

typedef struct streams {
    gw_buf_t tok, plain;     /* all streams back to back */
    size_t *tok_off, *plain_off; /* n + 1 offsets */
    int32_t **ids;           /* generated IDs per stream */
    size_t n, per_stream;    /* streams, tokens per stream */
} streams_t;

static void timings(gw_buf_t *b, size_t predicted)
{
    double ms = 7.9 * (double)predicted + unit() * 3.0;

    addf(b,
         ",\"timings\":{\"cache_n\":0,\"prompt_n\":12,\"prompt_ms\":3.117,"
         "\"prompt_per_token_ms\":0.25975,\"prompt_per_second\":3849.8556304138593,"
         "\"predicted_n\":%zu,\"predicted_ms\":%.3f,\"predicted_per_token_ms\":%.17g,"
         "\"predicted_per_second\":%.17g}",
         predicted, ms, ms / (double)predicted, 1000.0 * (double)predicted / ms);
}

static void bytes_array(gw_buf_t *b, const char *p, size_t n)
{
    size_t i;

    add(b, "[", 1);
    for (i = 0; i < n; i++)
        addf(b, "%s%u", i ? "," : "", (unsigned char)p[i]);
    add(b, "]", 1);
}

/* One token chunk: text (the released bytes) under the item of `id`. */
static void token_chunk(gw_buf_t *tok, gw_buf_t *plain, int32_t id, const char *text, size_t n,
                        size_t predicted)
{
    double lp = -unit() * 3.0;

    add(tok, HEAD, sizeof(HEAD) - 1);
    ADDL(tok, "{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":");
    add_jstr(tok, text, n);
    addf(tok, "},\"logprobs\":{\"content\":[{\"id\":%d,\"token\":", (int)id);
    add_jstr(tok, text, n);
    ADDL(tok, ",\"bytes\":");
    bytes_array(tok, text, n);
    addf(tok, ",\"logprob\":%.17g,\"top_logprobs\":[{\"id\":%d,\"token\":", lp, (int)id);
    add_jstr(tok, text, n);
    ADDL(tok, ",\"bytes\":");
    bytes_array(tok, text, n);
    addf(tok, ",\"logprob\":%.17g}]}]}}", lp);
    add(tok, TAIL, sizeof(TAIL) - 1);
    timings(tok, predicted);
    add(tok, "}\n\n", 3);

    add(plain, HEAD, sizeof(HEAD) - 1);
    ADDL(plain, "{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":");
    add_jstr(plain, text, n);
    add(plain, "}}", 2);
    add(plain, TAIL, sizeof(TAIL) - 1);
    add(plain, "}\n\n", 3);
}

static void gen_streams(const opts_t *o, const pieces_t *v, streams_t *s)
{
    size_t i, k, L = o->stream_len;

    memset(s, 0, sizeof(*s));
    s->n = o->tokens / L;
    s->per_stream = L;
    gw_buf_init(&s->tok, BIG);
    gw_buf_init(&s->plain, BIG);
    s->tok_off = calloc(s->n + 1, sizeof(size_t));
    s->plain_off = calloc(s->n + 1, sizeof(size_t));
    s->ids = calloc(s->n, sizeof(int32_t *));
    if (s->tok_off == NULL || s->plain_off == NULL || s->ids == NULL)
        die("out of memory");
    for (i = 0; i < s->n; i++) {
        int32_t *ids = malloc(L * sizeof(int32_t));

        if (ids == NULL)
            die("out of memory");
        s->ids[i] = ids;
        s->tok_off[i] = s->tok.len;
        s->plain_off[i] = s->plain.len;
        add(&s->tok, HEAD ROLE TAIL, sizeof(HEAD ROLE TAIL) - 1);
        timings(&s->tok, 1);
        add(&s->tok, "}\n\n", 3);
        add(&s->plain, HEAD ROLE TAIL "}\n\n", sizeof(HEAD ROLE TAIL "}\n\n") - 1);
        for (k = 0; k < L; k++) {
            ids[k] = (int32_t)(FIRST_WORD + rnd() % (v->n - FIRST_WORD));
            if (o->gap_every && k + 1 < L && (k + 1) % o->gap_every == 0) {
                /* held back, released with the next token under its item */
                char text[128];
                int32_t b = (int32_t)(FIRST_WORD + rnd() % (v->n - FIRST_WORD));
                size_t n = v->len[ids[k]] + v->len[b];

                memcpy(text, v->p[ids[k]], v->len[ids[k]]);
                memcpy(text + v->len[ids[k]], v->p[b], v->len[b]);
                ids[++k] = b;
                token_chunk(&s->tok, &s->plain, b, text, n, k + 1);
                continue;
            }
            token_chunk(&s->tok, &s->plain, ids[k], v->p[ids[k]], v->len[ids[k]], k + 1);
        }
        add(&s->tok, HEAD "{\"finish_reason\":\"length\",\"index\":0,\"delta\":{}}" TAIL,
            sizeof(HEAD "{\"finish_reason\":\"length\",\"index\":0,\"delta\":{}}" TAIL) - 1);
        timings(&s->tok, L);
        addf(&s->tok, VERBOSE, L, L, L, L + PROMPT_N);
        add(&s->tok, "}\n\n", 3);
        add(&s->tok, HEAD TAIL, sizeof(HEAD TAIL) - 1);
        addf(&s->tok,
             ",\"usage\":{\"completion_tokens\":%zu,\"prompt_tokens\":12,\"total_tokens\":%zu,"
             "\"prompt_tokens_details\":{\"cached_tokens\":0}}",
             L, L + PROMPT_N);
        timings(&s->tok, L);
        ADDL(&s->tok, "}\n\ndata: [DONE]\n\n");

        add(&s->plain, HEAD "{\"finish_reason\":\"length\",\"index\":0,\"delta\":{}}" TAIL,
            sizeof(HEAD "{\"finish_reason\":\"length\",\"index\":0,\"delta\":{}}" TAIL) - 1);
        timings(&s->plain, L);
        ADDL(&s->plain, "}\n\ndata: [DONE]\n\n");
    }
    s->tok_off[s->n] = s->tok.len;
    s->plain_off[s->n] = s->plain.len;
}

static void free_streams(streams_t *s)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        free(s->ids[i]);
    free(s->ids);
    free(s->tok_off);
    free(s->plain_off);
    gw_buf_free(&s->tok);
    gw_buf_free(&s->plain);
}

/* ---------------------------------------------------------------------------------
 * The measured work
 * ------------------------------------------------------------------------------- */

typedef struct ctx {
    gw_tok_resp_t *r;
    gw_buf_t stage;
    size_t events, out_bytes;
    /* verification */
    int verify;
    int32_t *got;
    size_t n_got, cap_got;
    size_t incomplete;
} ctx_t;

static int on_plain(void *data, const gw_sse_event_t *ev)
{
    ctx_t *c = data;

    gw_buf_reset(&c->stage);
    if (gw_buf_add(&c->stage, "data: ", 6) != GW_OK ||
        gw_oai_set_model(ev->data, ev->data_len, "pub", 3, &c->stage) < 0 ||
        gw_buf_add(&c->stage, "\n\n", 2) != GW_OK)
        return 1;
    c->events++;
    c->out_bytes += c->stage.len;
    return 0;
}

static void collect(ctx_t *c)
{
    const char *p = c->stage.ptr, *end = p + c->stage.len;

    while ((p = memmem(p, (size_t)(end - p), "\"token_ids\":[", 13)) != NULL) {
        p += 13;
        while (*p != ']') {
            char *q;
            long id = strtol(p, &q, 10);

            if (q == p)
                die("verification: bad token_ids");
            if (c->n_got == c->cap_got) {
                c->cap_got = c->cap_got ? 2 * c->cap_got : 1024;
                c->got = realloc(c->got, c->cap_got * sizeof(int32_t));
                if (c->got == NULL)
                    die("out of memory");
            }
            c->got[c->n_got++] = (int32_t)id;
            p = *q == ',' ? q + 1 : q;
        }
    }
    if (memmem(c->stage.ptr, c->stage.len, "\"token_ids_complete\":false", 26))
        c->incomplete++;
}

static int on_tok(void *data, const gw_sse_event_t *ev)
{
    ctx_t *c = data;

    gw_buf_reset(&c->stage);
    if (gw_tok_resp_event(c->r, ev->data, ev->data_len, &c->stage) == GW_TOK_STOP)
        return 2;
    c->events++;
    c->out_bytes += c->stage.len;
    if (c->verify && c->stage.len)
        collect(c);
    return 0;
}

static double cpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum { RUN_PLAIN, RUN_PLAIN_ON_TOK, RUN_TOK };

static const int64_t prompt_ids[PROMPT_N] = {1, 529, 29989, 1792, 29989, 29958,
                                             15043, 727, 32007, 32001, 29871, 13};

/* Runs one measurement over streams [0, n); returns CPU seconds. */
static double run(int kind, const streams_t *s, size_t n, const gw_tok_req_t *tr, gw_vocab_t *v,
                  ctx_t *c)
{
    double t0 = cpu_now();
    size_t i;

    for (i = 0; i < n; i++) {
        gw_sse_t sse;
        const gw_buf_t *b = kind == RUN_PLAIN ? &s->plain : &s->tok;
        const size_t *off = kind == RUN_PLAIN ? s->plain_off : s->tok_off;

        gw_sse_init(&sse, 1024 * 1024);
        if (kind == RUN_TOK)
            c->r = gw_tok_resp_new(tr, v, prompt_ids, PROMPT_N, "pub", 3);
        if (gw_sse_feed(&sse, b->ptr + off[i], off[i + 1] - off[i],
                        kind == RUN_TOK ? on_tok : on_plain, c, NULL) != GW_OK)
            die("sse decode failed");
        if (kind == RUN_TOK) {
            gw_tok_resp_free(c->r);
            c->r = NULL;
        }
        gw_sse_free(&sse);
    }
    return cpu_now() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static size_t arg_size(const char *name, const char *val)
{
    char *end;
    unsigned long long x;

    errno = 0;
    x = strtoull(val ? val : "", &end, 10);
    if (val == NULL || *end || errno || x == 0) {
        fprintf(stderr, "tokids_cost: %s needs a positive integer\n", name);
        exit(2);
    }
    return (size_t)x;
}

int main(int argc, char **argv)
{
    opts_t o = {200000, 32000, 500, 5, 0, 0x9E3779B97F4A7C15ull};
    /* the request: what the relay holds for a chat stream with return_token_ids */
    static const char req_body[] =
        "{\"model\":\"pub\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello there\"}],"
        "\"stream\":true,\"max_tokens\":500,\"return_token_ids\":true}";
    pieces_t pv;
    gw_buf_t vj, up;
    gw_vocab_t *v;
    gw_errbuf_t err;
    gw_tok_req_t tr;
    json_t *root;
    streams_t s;
    ctx_t c;
    double t_vocab, *res[3], med[3];
    size_t i, k, verify_n, n_tokens;
    int kind;

    for (i = 1; i < (size_t)argc; i++) {
        const char *a = argv[i], *val = i + 1 < (size_t)argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--tokens") == 0)
            o.tokens = arg_size(a, val);
        else if (strcmp(a, "--vocab") == 0)
            o.vocab = arg_size(a, val);
        else if (strcmp(a, "--stream-len") == 0)
            o.stream_len = arg_size(a, val);
        else if (strcmp(a, "--repeats") == 0)
            o.repeats = arg_size(a, val);
        else if (strcmp(a, "--gap-every") == 0)
            o.gap_every = arg_size(a, val);
        else if (strcmp(a, "--seed") == 0)
            o.seed = arg_size(a, val);
        else {
            fprintf(stderr,
                    "usage: tokids_cost [--tokens N] [--vocab V] [--stream-len L] [--repeats R]"
                    " [--gap-every K] [--seed S]\n");
            return 2;
        }
        i++;
    }
    if (o.vocab <= FIRST_WORD + 100 || o.stream_len > o.tokens || o.gap_every == 1)
        die("need --vocab > 359, --stream-len <= --tokens, --gap-every >= 2");
    rng = o.seed;

    /* the vocabulary, through the /tokenize answer as the cache builds it */
    gen_vocab(o.vocab, &pv);
    gw_buf_init(&vj, BIG);
    vocab_json(&pv, &vj);
    t_vocab = cpu_now();
    v = gw_vocab_from_json(vj.ptr, vj.len, pv.n, &err);
    t_vocab = cpu_now() - t_vocab;
    if (v == NULL)
        die(err.msg);
    gw_buf_free(&vj);

    root = json_loads(req_body, 0, NULL);
    if (root == NULL || gw_tok_req_detect(root, 1, 64, &tr, &err) != 1)
        die("request detection failed");
    gw_buf_init(&up, BIG);
    if (gw_tok_req_body(root, req_body, strlen(req_body), &tr, v, &up, &err) != GW_OK)
        die(err.msg);
    gw_buf_free(&up);

    gen_streams(&o, &pv, &s);
    n_tokens = s.n * s.per_stream;

    /* correctness first: the IDs that come out are the IDs that went in */
    memset(&c, 0, sizeof(c));
    gw_buf_init(&c.stage, BIG);
    verify_n = s.n < 4 ? s.n : 4;
    c.verify = 1;
    for (i = 0; i < verify_n; i++) {
        streams_t one = s; /* stream i alone */

        one.tok_off = s.tok_off + i;
        c.n_got = 0;
        run(RUN_TOK, &one, 1, &tr, v, &c);
        if (c.n_got != s.per_stream || memcmp(c.got, s.ids[i], c.n_got * sizeof(int32_t)) != 0)
            die("verification: token_ids differ from the generated IDs");
    }
    if (c.incomplete)
        die("verification: a finish chunk says token_ids_complete false");
    c.verify = 0;
    free(c.got);
    c.got = NULL;

    for (kind = 0; kind < 3; kind++) {
        res[kind] = calloc(o.repeats, sizeof(double));
        if (res[kind] == NULL)
            die("out of memory");
    }
    for (k = 0; k < o.repeats; k++) {
        for (kind = 0; kind < 3; kind++) {
            c.events = c.out_bytes = 0;
            res[kind][k] = run(kind, &s, s.n, &tr, v, &c) / (double)n_tokens * 1e6;
        }
    }

    printf("tokids_cost: vocabulary of %zu pieces built from its /tokenize answer in %.1f ms CPU\n",
           pv.n, t_vocab * 1e3);
    printf("tokids_cost: %zu tokens in %zu streams of %zu, %zu repeats, gap every %zu; "
           "stream bytes: token-ID %.1f MB, plain %.1f MB\n",
           n_tokens, s.n, s.per_stream, o.repeats, o.gap_every, (double)s.tok.len / 1e6,
           (double)s.plain.len / 1e6);
    {
        static const char *const label[3] = {
            "plain relay, plain chunks (sse decode + gw_oai_set_model)",
            "plain relay, token-ID chunks (same work, bigger chunks)",
            "token-ID path (sse decode + gw_tok_resp_event)"};

        for (kind = 0; kind < 3; kind++) {
            printf("  %-58s median %6.2f us/token  runs:", label[kind],
                   median(res[kind], o.repeats));
            for (k = 0; k < o.repeats; k++)
                printf(" %.2f", res[kind][k]);
            printf("\n");
            med[kind] = median(res[kind], o.repeats);
        }
    }
    printf("  %-58s median %6.2f us/token  (target < 20: %s)\n",
           "difference, token-ID path - plain relay", med[RUN_TOK] - med[RUN_PLAIN],
           med[RUN_TOK] - med[RUN_PLAIN] < 20.0 ? "PASS" : "FAIL");
    printf("{\"tokens\":%zu,\"vocab\":%zu,\"stream_len\":%zu,\"repeats\":%zu,\"gap_every\":%zu,"
           "\"vocab_build_ms\":%.3f,\"plain_us_per_token\":%.3f,"
           "\"plain_on_tokid_chunks_us_per_token\":%.3f,\"tokids_us_per_token\":%.3f,"
           "\"difference_us_per_token\":%.3f}\n",
           n_tokens, pv.n, s.per_stream, o.repeats, o.gap_every, t_vocab * 1e3, med[RUN_PLAIN],
           med[RUN_PLAIN_ON_TOK], med[RUN_TOK], med[RUN_TOK] - med[RUN_PLAIN]);

    for (kind = 0; kind < 3; kind++)
        free(res[kind]);
    gw_buf_free(&c.stage);
    free_streams(&s);
    gw_tok_req_free(&tr);
    json_decref(root);
    gw_vocab_unref(v);
    for (i = 0; i < pv.n; i++)
        free(pv.p[i]);
    free(pv.p);
    free(pv.len);
    return 0;
}
