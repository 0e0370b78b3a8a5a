/*
 * check_sse.c - unit tests for the SSE decoder and encoder (core/sse.c).
 *
 * The decoder is checked against fixtures in tests/fixtures/sse/: real llama-server
 * streams (HTTP header block stripped) and handcrafted ones for the corners of the
 * format (h*.sse). Every fixture is decoded in one feed, and that event list must be
 * reproduced exactly when the input is split in two at every byte position, fed one
 * byte at a time, and fed in random chunks. Some fixtures also carry an expected list
 * written out here, so the reference decode is itself checked. Then: the max_event
 * ceiling, stopping from the callback, and the encoder (exact bytes, ceilings, and
 * encode-then-decode round trips).
 */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sse.h"
#include "testutil.h"

#define MAX_EVENT (1024 * 1024)

/* ---------------------------------------------------------------------------------
 * Recording and comparing events
 * ------------------------------------------------------------------------------- */

typedef struct rec_event {
    gw_sse_kind_t kind;
    char *data, *event, *id;
    size_t data_len, event_len, id_len;
} rec_event_t;

/* Records every callback; returns stop_value from the stop_at-th call (1-based). */
typedef struct rec {
    rec_event_t *ev;
    size_t n, cap;
    size_t stop_at;
    int stop_value;
} rec_t;

static char *dup_bytes(const char *p, size_t n)
{
    char *q = malloc(n + 1);

    ck_assert_ptr_nonnull(q);
    memcpy(q, p, n);
    q[n] = '\0';
    return q;
}

static int on_record(void *data, const gw_sse_event_t *ev)
{
    rec_t *r = data;
    rec_event_t *e;

    /* The contract: NUL after each field, and "" (not NULL) for absent ones. */
    ck_assert_ptr_nonnull(ev->data);
    ck_assert_ptr_nonnull(ev->event);
    ck_assert_ptr_nonnull(ev->id);
    ck_assert_int_eq(ev->data[ev->data_len], '\0');
    ck_assert_int_eq(ev->event[ev->event_len], '\0');
    ck_assert_int_eq(ev->id[ev->id_len], '\0');

    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->ev = realloc(r->ev, r->cap * sizeof(*r->ev));
        ck_assert_ptr_nonnull(r->ev);
    }
    e = &r->ev[r->n++];
    e->kind = ev->kind;
    e->data = dup_bytes(ev->data, ev->data_len);
    e->data_len = ev->data_len;
    e->event = dup_bytes(ev->event, ev->event_len);
    e->event_len = ev->event_len;
    e->id = dup_bytes(ev->id, ev->id_len);
    e->id_len = ev->id_len;
    return (r->stop_at && r->n == r->stop_at) ? r->stop_value : 0;
}

static void rec_free(rec_t *r)
{
    size_t i;

    for (i = 0; i < r->n; i++) {
        free(r->ev[i].data);
        free(r->ev[i].event);
        free(r->ev[i].id);
    }
    free(r->ev);
    memset(r, 0, sizeof(*r));
}

static size_t rec_count(const rec_t *r, gw_sse_kind_t kind)
{
    size_t i, n = 0;

    for (i = 0; i < r->n; i++)
        n += r->ev[i].kind == kind;
    return n;
}

static int bytes_eq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && memcmp(a, b, an) == 0;
}

/* Compares each callback with the next recorded event, without allocating. */
typedef struct cmp {
    const rec_t *want;
    size_t i;
    int ignore_id;
    long bad; /* index of the first mismatch, -1 if none */
} cmp_t;

static int on_compare(void *data, const gw_sse_event_t *ev)
{
    cmp_t *c = data;
    const rec_event_t *w = c->i < c->want->n ? &c->want->ev[c->i] : NULL;

    if (c->bad < 0
        && (w == NULL || w->kind != ev->kind
            || !bytes_eq(w->data, w->data_len, ev->data, ev->data_len)
            || !bytes_eq(w->event, w->event_len, ev->event, ev->event_len)
            || (!c->ignore_id && !bytes_eq(w->id, w->id_len, ev->id, ev->id_len))
            || ev->data[ev->data_len] != '\0'))
        c->bad = (long)c->i;
    c->i++;
    return 0;
}

/*
 * A readable trace, one line per callback:
 *   data=<json>[ event=<json>][ id=<json>]     for an event
 *   comment=<json>                             for a comment
 * Caller frees.
 */
static char *render(const rec_t *r)
{
    gw_buf_t b;
    size_t i;
    char *s;

    gw_buf_init(&b, SIZE_MAX);
    for (i = 0; i < r->n; i++) {
        const rec_event_t *e = &r->ev[i];

        if (e->kind == GW_SSE_COMMENT) {
            gw_buf_adds(&b, "comment=");
            gw_buf_add_json_str(&b, e->data, e->data_len);
        } else {
            gw_buf_adds(&b, "data=");
            gw_buf_add_json_str(&b, e->data, e->data_len);
            if (e->event_len) {
                gw_buf_adds(&b, " event=");
                gw_buf_add_json_str(&b, e->event, e->event_len);
            }
            if (e->id_len) {
                gw_buf_adds(&b, " id=");
                gw_buf_add_json_str(&b, e->id, e->id_len);
            }
        }
        gw_buf_adds(&b, "\n");
    }
    s = gw_buf_take(&b, NULL);
    return s ? s : dup_bytes("", 0);
}

/* ---------------------------------------------------------------------------------
 * Feeding
 * ------------------------------------------------------------------------------- */

typedef enum feed_mode {
    FEED_WHOLE,    /* one feed */
    FEED_SPLIT,    /* two feeds, split at arg */
    FEED_BYTEWISE, /* one byte per feed */
    FEED_RANDOM,   /* chunks of 1..arg bytes from a fixed pseudo-random sequence */
} feed_mode_t;

static uint32_t rng_next(uint32_t *s)
{
    /* xorshift32: reproducible everywhere, which rand() is not. */
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/*
 * Feeds buf to a fresh decoder in pieces as mode says, stopping at the first failure
 * or stop. Returns the first non-OK result; *stopped gets the stop value.
 */
static gw_err_t decode(const char *buf, size_t len, size_t max_event, feed_mode_t mode,
                       size_t arg, gw_sse_event_cb cb, void *ctx, int *stopped)
{
    gw_sse_t p;
    gw_err_t rc = GW_OK;
    uint32_t seed = 2463534242u ^ (uint32_t)arg;
    size_t off = 0, n;
    int stop = 0, first = 1;

    gw_sse_init(&p, max_event);
    do {
        switch (mode) {
        case FEED_WHOLE:
            n = len;
            break;
        case FEED_SPLIT:
            n = first ? arg : len - off;
            break;
        case FEED_BYTEWISE:
            n = 1;
            break;
        default:
            n = 1 + rng_next(&seed) % (arg ? arg : 1);
            break;
        }
        if (n > len - off)
            n = len - off;
        rc = gw_sse_feed(&p, buf + off, n, cb, ctx, &stop);
        off += n;
        first = 0;
    } while (rc == GW_OK && !stop && off < len);
    if (rc != GW_OK) {
        /* Failed stays failed. */
        ck_assert_int_eq(gw_sse_feed(&p, "data: x\n\n", 9, cb, ctx, NULL), GW_ETOOBIG);
    }
    gw_sse_free(&p);
    if (stopped)
        *stopped = stop;
    return rc;
}

/* Decodes buf as mode says and fails unless the callbacks and the result match want. */
static void expect_same(const char *what, const char *buf, size_t len, size_t max_event,
                        feed_mode_t mode, size_t arg, const rec_t *want, gw_err_t want_rc,
                        int ignore_id)
{
    cmp_t c = {want, 0, ignore_id, -1};
    gw_err_t rc = decode(buf, len, max_event, mode, arg, on_compare, &c, NULL);

    if (c.bad >= 0)
        ck_abort_msg("%s (mode %d, arg %zu): callback %ld differs", what, (int)mode, arg, c.bad);
    if (c.i != want->n)
        ck_abort_msg("%s (mode %d, arg %zu): %zu callbacks, want %zu", what, (int)mode, arg,
                     c.i, want->n);
    if (rc != want_rc)
        ck_abort_msg("%s (mode %d, arg %zu): rc %s, want %s", what, (int)mode, arg,
                     gw_err_name(rc), gw_err_name(want_rc));
}

/* Every way of feeding buf must give the same as one feed (want, want_rc). */
static void expect_split_invariant(const char *what, const char *buf, size_t len,
                                   size_t max_event, const rec_t *want, gw_err_t want_rc)
{
    size_t i;

    for (i = 0; i <= len; i++)
        expect_same(what, buf, len, max_event, FEED_SPLIT, i, want, want_rc, 0);
    expect_same(what, buf, len, max_event, FEED_BYTEWISE, 0, want, want_rc, 0);
    for (i = 2; i <= 300; i += 37)
        expect_same(what, buf, len, max_event, FEED_RANDOM, i, want, want_rc, 0);
}

/* ---------------------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------------------- */

typedef struct fixture {
    const char *file;
    int n_events;          /* dispatched events expected */
    int n_comments;        /* comments expected */
    const char *last_data; /* data of the last event; NULL: not checked */
    const char *trace;     /* the whole render(); NULL: not checked */
} fixture_t;

static const fixture_t fixtures[] = {
    /* Real llama-server streams (reference/llama-server-samples, body only). */
    {"09b_chat_stream_plain.sse", 11, 0, "[DONE]", NULL},
    {"09_chat_stream_logprobs.sse", 11, 0, "[DONE]", NULL},
    {"11_chat_stream_include_usage.sse", 8, 0, "[DONE]", NULL},
    {"12c_chat_stop_spanning_tokens_stream.sse", 6, 0, "[DONE]", NULL},
    {"19d_sigterm_hang_50ms_run9_client.sse", 77, 0, NULL, NULL}, /* cut: no [DONE] */
    {"21c_completions_stream_stream_options_absent.sse", 5, 0, "[DONE]", NULL},
    {"23b_chat_stream_logprobs_eog_early.sse", 4, 0, "[DONE]", NULL},
    {"26_completion_native_stream.sse", 7, 0, NULL, NULL}, /* native: no [DONE] */
    {"31_chat_stream_logprobs_utf8_bytes.sse", 8, 0, "[DONE]", NULL},
    {"32_chat_stream_n2.sse", 9, 0, "[DONE]", NULL},
    {"34g_chat_stream_forced_lone_continuation_byte.sse", 1, 0,
     "{\"error\":{\"code\":500,\"message\":\"The model produced output that does not match "
     "the expected peg-native format\",\"type\":\"server_error\"}}",
     NULL},
    {"34h_chat_stream_forced_incomplete_lead_byte.sse", 2, 0, "[DONE]", NULL},

    /* Handcrafted. */
    {"h01_crlf.sse", 3, 1, "[DONE]",
     "data=\"{\\\"a\\\":1}\"\n"
     "comment=\" ping\"\n"
     "data=\"line1\\nline2\"\n"
     "data=\"[DONE]\" event=\"done\"\n"},
    {"h02_cr_only.sse", 3, 1, "[DONE]",
     "data=\"{\\\"a\\\":1}\"\n"
     "comment=\" ping\"\n"
     "data=\"line1\\nline2\"\n"
     "data=\"[DONE]\" event=\"done\"\n"},
    {"h03_mixed_line_ends.sse", 6, 0, "f\ng",
     "data=\"a\"\n"
     "data=\"b\"\n"
     "data=\"c\"\n"
     "data=\"d\"\n"
     "data=\"e\"\n"
     "data=\"f\\ng\"\n"},
    {"h04_comments.sse", 1, 7, "a\nb",
     "comment=\"\"\n"
     "comment=\" ping\"\n"
     "comment=\"no-space\"\n"
     "comment=\" inside an event\"\n"
     "data=\"a\\nb\"\n"
     "comment=\":double\"\n"
     "comment=\"  two spaces\"\n"
     "comment=\"\"\n"},
    {"h05_multiline_data.sse", 4, 0, "x\n",
     "data=\"first\\nsecond (no space)\\n two spaces\\n\\n\\ncolon: inside: value\"\n"
     "data=\"\"\n"
     "data=\"\"\n"
     "data=\"x\\n\"\n"},
    {"h06_fields.sse", 10, 0, NULL,
     "data=\"a\" event=\"first\" id=\"1\"\n"
     "data=\"b\"\n"
     "data=\"c\"\n"
     "data=\"d\"\n"
     "data=\"e\" event=\"no-space\" id=\"7\"\n"
     "data=\"f\" event=\"b\"\n"
     "data=\"g\"\n"
     "data=\"h\"\n"
     "data=\"i\" id=\"5\"\n"
     "data=\"n\\u0000ul\"\n"},
    {"h07_no_final_blank.sse", 2, 0, "two",
     "data=\"one\"\n"
     "data=\"two\"\n"},
    {"h08_error_midstream.sse", 3, 1, NULL,
     "data=\"{\\\"choices\\\":[{\\\"delta\\\":{\\\"content\\\":\\\"Hi\\\"}}]}\"\n"
     "comment=\" keep-alive\"\n"
     "data=\"{\\\"choices\\\":[{\\\"delta\\\":{\\\"content\\\":\\\" there\\\"}}]}\"\n"
     "data=\"{\\\"error\\\":{\\\"code\\\":500,\\\"message\\\":\\\"boom\\\",\\\"type\\\":"
     "\\\"server_error\\\"}}\" event=\"error\"\n"},
    {"h09_utf8.sse", 3, 1, "\xF0\x9D\x84\x9E\n\xCE\xA9",
     "data=\"{\\\"content\\\":\\\"h\xC3\xA9llo w\xC3\xB6rld \xE2\x80\x94 "
     "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\xA6\x99\\\"}\"\n"
     "data=\"\xE2\x9C\x93\" event=\"\xC3\xBCn\xC3\xAF" "c\xC3\xB6" "d\xC3\xA9\"\n"
     "comment=\" \xF0\x9F\x92\xAC comment\"\n"
     "data=\"\xF0\x9D\x84\x9E\\n\xCE\xA9\"\n"},
    {"h10_bom.sse", 2, 0, "\xEF\xBB\xBFkept",
     "data=\"bom\"\n"
     "data=\"\xEF\xBB\xBF" "kept\"\n"},
    {"h11_cut_midline.sse", 3, 0, NULL, NULL}, /* 09b cut inside its 4th event */
};

#define N_FIXTURES ((int)(sizeof(fixtures) / sizeof(fixtures[0])))

static char *load(const fixture_t *f, size_t *len)
{
    char rel[256];

    snprintf(rel, sizeof(rel), "sse/%s", f->file);
    return gw_test_fixture(rel, len);
}

/* The single-feed decode matches what the table says about the fixture. */
static void check_expectations(const fixture_t *f, const rec_t *r)
{
    const rec_event_t *last = NULL;
    size_t i;
    char *trace;

    ck_assert_msg(rec_count(r, GW_SSE_EVENT) == (size_t)f->n_events, "%s: %zu events, want %d",
                  f->file, rec_count(r, GW_SSE_EVENT), f->n_events);
    ck_assert_msg(rec_count(r, GW_SSE_COMMENT) == (size_t)f->n_comments,
                  "%s: %zu comments, want %d", f->file, rec_count(r, GW_SSE_COMMENT),
                  f->n_comments);
    for (i = 0; i < r->n; i++)
        if (r->ev[i].kind == GW_SSE_EVENT)
            last = &r->ev[i];
    if (f->last_data) {
        ck_assert_ptr_nonnull(last);
        ck_assert_msg(bytes_eq(last->data, last->data_len, f->last_data, strlen(f->last_data)),
                      "%s: last data is \"%s\", want \"%s\"", f->file, last->data, f->last_data);
    }
    if (f->trace) {
        trace = render(r);
        ck_assert_str_eq(trace, f->trace);
        free(trace);
    }
}

START_TEST(test_fixture_any_split)
{
    const fixture_t *f = &fixtures[_i];
    rec_t ref = {0};
    size_t len;
    char *buf = load(f, &len);

    ck_assert_int_eq(decode(buf, len, MAX_EVENT, FEED_WHOLE, 0, on_record, &ref, NULL), GW_OK);
    check_expectations(f, &ref);
    expect_split_invariant(f->file, buf, len, MAX_EVENT, &ref, GW_OK);
    rec_free(&ref);
    free(buf);
}
END_TEST

/* Encoding the decoded events and decoding that again gives the same events (an id is
 * not encoded, so ids are not compared). */
START_TEST(test_fixture_roundtrip)
{
    const fixture_t *f = &fixtures[_i];
    rec_t ref = {0};
    gw_buf_t out;
    size_t len, i;
    char *buf = load(f, &len);

    ck_assert_int_eq(decode(buf, len, MAX_EVENT, FEED_WHOLE, 0, on_record, &ref, NULL), GW_OK);
    gw_buf_init(&out, SIZE_MAX);
    for (i = 0; i < ref.n; i++) {
        const rec_event_t *e = &ref.ev[i];

        if (e->kind == GW_SSE_COMMENT)
            ck_assert_int_eq(gw_sse_encode_comment(&out, e->data, e->data_len), GW_OK);
        else
            ck_assert_int_eq(gw_sse_encode(&out, e->event, e->event_len, e->data, e->data_len),
                             GW_OK);
    }
    expect_same(f->file, out.ptr ? out.ptr : "", out.len, MAX_EVENT, FEED_WHOLE, 0, &ref,
                GW_OK, 1);
    expect_same(f->file, out.ptr ? out.ptr : "", out.len, MAX_EVENT, FEED_BYTEWISE, 0, &ref,
                GW_OK, 1);
    gw_buf_free(&out);
    rec_free(&ref);
    free(buf);
}
END_TEST

/* The plain chat stream, event by event. */
START_TEST(test_09b_exact)
{
    static const char first[] =
        "{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"role\":\"assistant\","
        "\"content\":null}}],\"created\":1795919496,\"id\":\"chatcmpl-eNV5aLayKPppzId0hmIJIOt7"
        "oS8vsefs\",\"model\":\"models/tiny-llama.gguf\",\"system_fingerprint\":\"b10587-3f545be"
        "cc\",\"object\":\"chat.completion.chunk\"}";
    static const char *const contents[] = {
        NULL,     " faces", "\xE3\x83\xA0", "merge", " view", " COM", "azz", " peak",
        " solar", NULL,
    };
    rec_t r = {0};
    size_t len, i;
    char *buf = gw_test_fixture("sse/09b_chat_stream_plain.sse", &len);

    ck_assert_int_eq(decode(buf, len, MAX_EVENT, FEED_WHOLE, 0, on_record, &r, NULL), GW_OK);
    ck_assert_uint_eq(r.n, 11);
    ck_assert_uint_eq(r.ev[0].data_len, strlen(first));
    ck_assert_str_eq(r.ev[0].data, first);
    ck_assert_str_eq(r.ev[10].data, "[DONE]");
    for (i = 0; i < r.n; i++) {
        ck_assert_int_eq(r.ev[i].kind, GW_SSE_EVENT);
        ck_assert_str_eq(r.ev[i].event, "");
        ck_assert_str_eq(r.ev[i].id, "");
    }
    /* The chunks in between are whole JSON objects with the expected deltas. */
    for (i = 0; i < 10; i++) {
        json_t *j = json_loads(r.ev[i].data, 0, NULL), *delta;

        ck_assert_msg(j != NULL, "event %zu is not JSON", i);
        ck_assert_str_eq(json_string_value(json_object_get(j, "object")),
                         "chat.completion.chunk");
        delta = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta");
        if (contents[i])
            ck_assert_str_eq(json_string_value(json_object_get(delta, "content")), contents[i]);
        json_decref(j);
    }
    rec_free(&r);
    free(buf);
}
END_TEST

/* An error instead of [DONE]: the error object is the data, untouched. */
START_TEST(test_34g_error_event)
{
    rec_t r = {0};
    size_t len;
    char *buf = gw_test_fixture("sse/34g_chat_stream_forced_lone_continuation_byte.sse", &len);

    ck_assert_int_eq(decode(buf, len, MAX_EVENT, FEED_WHOLE, 0, on_record, &r, NULL), GW_OK);
    ck_assert_uint_eq(r.n, 1);
    gw_test_json_eq(r.ev[0].data, "{\"error\": {\"code\": 500, \"type\": \"server_error\", "
                                  "\"message\": \"The model produced output that does not "
                                  "match the expected peg-native format\"}}");
    rec_free(&r);
    free(buf);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Decoder corners not worth a fixture
 * ------------------------------------------------------------------------------- */

static char *decode_render(const char *s, size_t max_event, gw_err_t *rc)
{
    rec_t r = {0};
    char *t;

    *rc = decode(s, strlen(s), max_event, FEED_WHOLE, 0, on_record, &r, NULL);
    t = render(&r);
    rec_free(&r);
    return t;
}

START_TEST(test_decode_corners)
{
    static const struct {
        const char *in, *trace;
    } rows[] = {
        {"", ""},
        {"\n\n\r\n\r", ""},
        {"data:x\n\n", "data=\"x\"\n"},
        {"data:\tx\n\n", "data=\"\\tx\"\n"},             /* only a space is stripped */
        {"data: \n\n", "data=\"\"\n"},
        {"data:  \n\n", "data=\" \"\n"},
        {"data: a\r\n\r\n", "data=\"a\"\n"},
        {"data: a\r\r\n", "data=\"a\"\n"},             /* CR, then CRLF: two line ends */
        {"data: a\n\r\r\n", "data=\"a\"\n"},
        {"data: a\r\n", ""},                           /* never dispatched */
        {":\xEF\xBB\xBF\n", "comment=\"\xEF\xBB\xBF\"\n"},
        {"\xEF\xBB\xBF:c\n", "comment=\"c\"\n"},       /* BOM only at the very start */
        {"\xEF\xBB\xBF\n", ""},
        {"\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\n", ""}, /* one BOM dropped, not two */
        {"id: 1\ndata: a\n\ndata: b\n\n", "data=\"a\" id=\"1\"\ndata=\"b\"\n"},
        {"data: a\nevent: e\n\n", "data=\"a\" event=\"e\"\n"}, /* field order is free */
        {"retry: 10\n\n", ""},
        {":c1\r:c2\r\n:c3\n", "comment=\"c1\"\ncomment=\"c2\"\ncomment=\"c3\"\n"},
    };
    size_t i;
    gw_err_t rc;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char *t = decode_render(rows[i].in, MAX_EVENT, &rc);

        ck_assert_int_eq(rc, GW_OK);
        ck_assert_msg(strcmp(t, rows[i].trace) == 0, "row %zu: got\n%s\nwant\n%s", i, t,
                      rows[i].trace);
        free(t);
    }
}
END_TEST

/* A CR ending one feed and an LF starting the next are one line end. */
START_TEST(test_cr_lf_across_feeds)
{
    gw_sse_t p;
    rec_t r = {0};

    gw_sse_init(&p, MAX_EVENT);
    ck_assert_int_eq(gw_sse_feed(&p, "data: a\r", 8, on_record, &r, NULL), GW_OK);
    ck_assert_int_eq(gw_sse_feed(&p, "\n", 1, on_record, &r, NULL), GW_OK);
    ck_assert_uint_eq(r.n, 0); /* an LF here would have been a blank line */
    ck_assert_int_eq(gw_sse_feed(&p, "\r", 1, on_record, &r, NULL), GW_OK);
    ck_assert_uint_eq(r.n, 1); /* a CR alone dispatches at once */
    ck_assert_int_eq(gw_sse_feed(&p, "\ndata: b\n\n", 10, on_record, &r, NULL), GW_OK);
    ck_assert_uint_eq(r.n, 2);
    ck_assert_str_eq(r.ev[0].data, "a");
    ck_assert_str_eq(r.ev[1].data, "b");
    gw_sse_free(&p);
    rec_free(&r);
}
END_TEST

START_TEST(test_empty_feed)
{
    gw_sse_t p;
    rec_t r = {0};
    int stopped = -1;

    gw_sse_init(&p, MAX_EVENT);
    ck_assert_int_eq(gw_sse_feed(&p, NULL, 0, on_record, &r, &stopped), GW_OK);
    ck_assert_int_eq(stopped, 0);
    ck_assert_int_eq(gw_sse_feed(&p, "data: a\n\n", 9, on_record, &r, &stopped), GW_OK);
    ck_assert_int_eq(stopped, 0);
    ck_assert_uint_eq(r.n, 1);
    gw_sse_free(&p);
    gw_sse_free(&p); /* idempotent */
    rec_free(&r);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * max_event
 * ------------------------------------------------------------------------------- */

/* Decodes s whole with the given ceiling, checks the trace and result, then checks that
 * every other way of feeding it agrees. */
static void expect_limit(const char *s, size_t max_event, const char *trace, gw_err_t want_rc)
{
    rec_t r = {0};
    gw_err_t rc = decode(s, strlen(s), max_event, FEED_WHOLE, 0, on_record, &r, NULL);
    char *t = render(&r);

    ck_assert_msg(rc == want_rc, "\"%s\" max %zu: rc %s, want %s", s, max_event,
                  gw_err_name(rc), gw_err_name(want_rc));
    ck_assert_msg(strcmp(t, trace) == 0, "\"%s\" max %zu: got\n%s\nwant\n%s", s, max_event, t,
                  trace);
    expect_split_invariant(s, s, strlen(s), max_event, &r, rc);
    free(t);
    rec_free(&r);
}

START_TEST(test_max_event)
{
    /* Lines up to max_event (16) bytes are fine; one more byte fails. */
    expect_limit("data: 0123456789\n\n", 16, "data=\"0123456789\"\n", GW_OK);
    expect_limit("data: 0123456789a\n\n", 16, "", GW_ETOOBIG);
    expect_limit(": 0123456789abcd\n", 16, "comment=\" 0123456789abcd\"\n", GW_OK);
    expect_limit(": 0123456789abcde\n", 16, "", GW_ETOOBIG);
    expect_limit("event: 012345678\n", 16, "", GW_OK);
    expect_limit("event: 0123456789\n", 16, "", GW_ETOOBIG);
    /* A partial line over the limit fails without waiting for its end. */
    expect_limit("data: 0123456789abcdef", 16, "", GW_ETOOBIG);
    /* Joined data: 7 + 1 + 8 = 16 fits, one more byte does not. */
    expect_limit("data: 0123456\ndata: 01234567\n\n", 16, "data=\"0123456\\n01234567\"\n", GW_OK);
    expect_limit("data: 0123456\ndata: 012345678\n\n", 16, "", GW_ETOOBIG);
    expect_limit("data:\ndata:\ndata: 0123456789abc\n\n", 16, "", GW_ETOOBIG);
    /* Events before the failure are delivered, nothing after it. */
    expect_limit("data: ok\n\n: c\ndata: 0123456789abcdef\n\ndata: late\n\n", 16,
                 "data=\"ok\"\ncomment=\" c\"\n", GW_ETOOBIG);
    /* The limit is per event: many events of the maximum size are fine. */
    expect_limit("data: 0123456789\n\ndata: 0123456789\n\n", 16,
                 "data=\"0123456789\"\ndata=\"0123456789\"\n", GW_OK);
}
END_TEST

/* A 1 MiB event at the real ceiling, in a few feeds. */
START_TEST(test_max_event_large)
{
    size_t n = MAX_EVENT - 6, i;
    char *s = malloc(MAX_EVENT + 16);
    gw_sse_t p;
    rec_t r = {0};

    ck_assert_ptr_nonnull(s);
    memcpy(s, "data: ", 6);
    for (i = 0; i < n; i++)
        s[6 + i] = (char)('a' + i % 26);
    memcpy(s + 6 + n, "\n\n", 2);
    gw_sse_init(&p, MAX_EVENT);
    for (i = 0; i < MAX_EVENT + 2; i += 65536) {
        size_t k = MAX_EVENT + 2 - i < 65536 ? MAX_EVENT + 2 - i : 65536;

        ck_assert_int_eq(gw_sse_feed(&p, s + i, k, on_record, &r, NULL), GW_OK);
    }
    ck_assert_uint_eq(r.n, 1);
    ck_assert_uint_eq(r.ev[0].data_len, n);
    ck_assert_int_eq(memcmp(r.ev[0].data, s + 6, n), 0);
    /* One byte more is one too many, whichever feed brings it. */
    ck_assert_int_eq(gw_sse_feed(&p, "data: ", 6, on_record, &r, NULL), GW_OK);
    ck_assert_int_eq(gw_sse_feed(&p, s + 6, n, on_record, &r, NULL), GW_OK);
    ck_assert_int_eq(gw_sse_feed(&p, "z", 1, on_record, &r, NULL), GW_ETOOBIG);
    ck_assert_int_eq(gw_sse_feed(&p, "\n\n", 2, on_record, &r, NULL), GW_ETOOBIG);
    ck_assert_uint_eq(r.n, 1);
    gw_sse_free(&p);
    rec_free(&r);
    free(s);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Stopping from the callback
 * ------------------------------------------------------------------------------- */

START_TEST(test_stop)
{
    static const char in[] = "data: a\n\n: c\ndata: b\n\ndata: c\n\ndata: d";
    size_t stop_at;

    for (stop_at = 1; stop_at <= 3; stop_at++) {
        gw_sse_t p;
        rec_t r = {0};
        int stopped = 0;

        r.stop_at = stop_at;
        r.stop_value = 40 + (int)stop_at;
        gw_sse_init(&p, MAX_EVENT);
        ck_assert_int_eq(gw_sse_feed(&p, in, sizeof(in) - 1, on_record, &r, &stopped), GW_OK);
        ck_assert_int_eq(stopped, 40 + (int)stop_at);
        ck_assert_uint_eq(r.n, stop_at); /* no callback after the stop */
        /* Nothing after the stopping line was consumed: no partial line, no data. */
        ck_assert_uint_eq(p.line.len, 0);
        ck_assert_uint_eq(p.data.len, 0);
        ck_assert_int_eq(p.has_data, 0);
        gw_sse_free(&p);
        rec_free(&r);
    }
}
END_TEST

START_TEST(test_stop_without_out_param)
{
    gw_sse_t p;
    rec_t r = {0};

    r.stop_at = 1;
    r.stop_value = -1;
    gw_sse_init(&p, MAX_EVENT);
    ck_assert_int_eq(gw_sse_feed(&p, "data: a\n\ndata: b\n\n", 18, on_record, &r, NULL), GW_OK);
    ck_assert_uint_eq(r.n, 1);
    gw_sse_free(&p);
    rec_free(&r);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Encoder
 * ------------------------------------------------------------------------------- */

/* want is a string literal, so NUL bytes in it count. */
#define expect_encode(event, data, data_len, want)                                          \
    expect_encode_n((event), (data), (data_len), (want), sizeof(want) - 1)

static void expect_encode_n(const char *event, const char *data, size_t data_len,
                            const char *want, size_t want_len)
{
    gw_buf_t out;

    gw_buf_init(&out, 1024);
    ck_assert_int_eq(gw_sse_encode(&out, event, event ? strlen(event) : 0, data, data_len),
                     GW_OK);
    ck_assert_uint_eq(out.len, want_len);
    ck_assert_int_eq(memcmp(out.ptr, want, want_len), 0);
    ck_assert_int_eq(out.ptr[out.len], '\0');
    gw_buf_free(&out);
}

START_TEST(test_encode_exact)
{
    expect_encode(NULL, "{\"a\":1}", 7, "data: {\"a\":1}\n\n");
    expect_encode("", "[DONE]", 6, "data: [DONE]\n\n");
    expect_encode("error", "{}", 2, "event: error\ndata: {}\n\n");
    expect_encode(NULL, "a\nb", 3, "data: a\ndata: b\n\n");
    expect_encode(NULL, "", 0, "data: \n\n");
    expect_encode(NULL, NULL, 0, "data: \n\n");
    expect_encode(NULL, "\n", 1, "data: \ndata: \n\n");
    expect_encode(NULL, "a\r\nb\rc\n", 7, "data: a\ndata: b\ndata: c\ndata: \n\n");
    expect_encode(NULL, "a\r", 2, "data: a\ndata: \n\n");
    expect_encode(NULL, " lead", 5, "data:  lead\n\n");
    expect_encode(NULL, "n\0ul", 4, "data: n\0ul\n\n");
}
END_TEST

START_TEST(test_encode_comment)
{
    gw_buf_t out;

    gw_buf_init(&out, 1024);
    ck_assert_int_eq(gw_sse_encode_comment(&out, "", 0), GW_OK);
    ck_assert_int_eq(gw_sse_encode_comment(&out, " ping", 5), GW_OK);
    ck_assert_int_eq(gw_sse_encode_comment(&out, NULL, 0), GW_OK);
    ck_assert_str_eq(out.ptr, ":\n\n: ping\n\n:\n\n");
    gw_buf_free(&out);
}
END_TEST

/* A value that would span lines cannot be an event name or a comment. */
START_TEST(test_encode_refuses_line_ends)
{
    gw_buf_t out;

    gw_buf_init(&out, 1024);
    gw_buf_adds(&out, "keep");
    ck_assert_int_eq(gw_sse_encode(&out, "a\nb", 3, "x", 1), GW_EPARAM);
    ck_assert_int_eq(gw_sse_encode(&out, "a\r", 2, "x", 1), GW_EPARAM);
    ck_assert_int_eq(gw_sse_encode_comment(&out, "a\nb", 3), GW_EPARAM);
    ck_assert_int_eq(gw_sse_encode_comment(&out, "\r", 1), GW_EPARAM);
    ck_assert_str_eq(out.ptr, "keep");
    gw_buf_free(&out);
}
END_TEST

/* Output that would pass the ceiling fails and leaves the buffer as it was. */
START_TEST(test_encode_ceiling)
{
    static const char want[] = "keepevent: e\ndata: a\ndata: b\n\n";
    gw_buf_t out;

    gw_buf_init(&out, sizeof(want) - 2);
    gw_buf_adds(&out, "keep");
    ck_assert_int_eq(gw_sse_encode(&out, "e", 1, "a\nb", 3), GW_ETOOBIG);
    ck_assert_str_eq(out.ptr, "keep");
    ck_assert_uint_eq(out.len, 4);
    gw_buf_free(&out);

    gw_buf_init(&out, sizeof(want) - 1);
    gw_buf_adds(&out, "keep");
    ck_assert_int_eq(gw_sse_encode(&out, "e", 1, "a\nb", 3), GW_OK);
    ck_assert_str_eq(out.ptr, want);
    ck_assert_int_eq(gw_sse_encode(&out, NULL, 0, "", 0), GW_ETOOBIG);
    ck_assert_int_eq(gw_sse_encode_comment(&out, "", 0), GW_ETOOBIG);
    ck_assert_str_eq(out.ptr, want);
    gw_buf_free(&out);

    gw_buf_init(&out, 5);
    ck_assert_int_eq(gw_sse_encode_comment(&out, "abc", 3), GW_ETOOBIG);
    ck_assert_int_eq(gw_sse_encode_comment(&out, "ab", 2), GW_OK);
    ck_assert_str_eq(out.ptr, ":ab\n\n");
    gw_buf_free(&out);
}
END_TEST

/* Random data, event names and feed splits: decode(encode(x)) == x with CR and CRLF
 * read as LF. */
START_TEST(test_encode_roundtrip_random)
{
    static const char alphabet[] = "ab :\n\r\xC3\xA9{}\"\\";
    static const char *const names[] = {"", "x", "error", "\xC3\xBC"};
    uint32_t seed = 12345;
    int round;

    for (round = 0; round < 2000; round++) {
        char data[64], want[64];
        size_t n = rng_next(&seed) % sizeof(data), wn = 0, i, split;
        const char *name = names[rng_next(&seed) % 4];
        gw_buf_t out;
        gw_sse_t p;
        rec_t r = {0};

        for (i = 0; i < n; i++)
            data[i] = alphabet[rng_next(&seed) % (sizeof(alphabet) - 1)];
        for (i = 0; i < n; i++) {
            if (data[i] == '\r' && i + 1 < n && data[i + 1] == '\n')
                continue;
            want[wn++] = data[i] == '\r' ? '\n' : data[i];
        }
        gw_buf_init(&out, 4096);
        ck_assert_int_eq(gw_sse_encode(&out, name, strlen(name), data, n), GW_OK);
        split = out.len ? rng_next(&seed) % out.len : 0;
        gw_sse_init(&p, MAX_EVENT);
        ck_assert_int_eq(gw_sse_feed(&p, out.ptr, split, on_record, &r, NULL), GW_OK);
        ck_assert_int_eq(gw_sse_feed(&p, out.ptr + split, out.len - split, on_record, &r, NULL),
                         GW_OK);
        ck_assert_uint_eq(r.n, 1);
        ck_assert_msg(bytes_eq(r.ev[0].data, r.ev[0].data_len, want, wn), "round %d", round);
        ck_assert_str_eq(r.ev[0].event, name);
        gw_sse_free(&p);
        gw_buf_free(&out);
        rec_free(&r);
    }
}
END_TEST

static Suite *sse_suite(void)
{
    Suite *s = suite_create("sse");
    TCase *tc;

    tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_fixture_any_split, 0, N_FIXTURES);
    tcase_add_loop_test(tc, test_fixture_roundtrip, 0, N_FIXTURES);
    tcase_add_test(tc, test_09b_exact);
    tcase_add_test(tc, test_34g_error_event);
    suite_add_tcase(s, tc);

    tc = tcase_create("decoder");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_decode_corners);
    tcase_add_test(tc, test_cr_lf_across_feeds);
    tcase_add_test(tc, test_empty_feed);
    tcase_add_test(tc, test_max_event);
    tcase_add_test(tc, test_max_event_large);
    tcase_add_test(tc, test_stop);
    tcase_add_test(tc, test_stop_without_out_param);
    suite_add_tcase(s, tc);

    tc = tcase_create("encoder");
    tcase_add_test(tc, test_encode_exact);
    tcase_add_test(tc, test_encode_comment);
    tcase_add_test(tc, test_encode_refuses_line_ends);
    tcase_add_test(tc, test_encode_ceiling);
    tcase_add_test(tc, test_encode_roundtrip_random);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sse_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
