/*
 * sse.c - the incremental Server-Sent Events decoder and encoder declared in sse.h.
 *
 * This file owns the line splitting, the field rules and the event assembly of the
 * WHATWG event-stream format, and nothing else: it never allocates beyond the four
 * bounded buffers in gw_sse_t, never does I/O and never prints.
 *
 * Speed: a relay feeds whatever curl hands over, and the common case is one or more
 * whole `data: {json}\n\n` events per feed. Line ends are found with memchr, and a
 * line that is complete within the input is parsed in place; only the tail of a feed
 * that ends mid-line is copied into p->line. The data value is copied once, into
 * p->data, because the callback is promised a NUL-terminated string. The positions
 * of the next LF and CR are cached across lines so that a feed of many short lines
 * is scanned once, whatever its line ends (a naive "memchr for LF, then for CR"
 * rescans the rest of the feed for every line of a CR-only stream).
 *
 * Beyond sse.h: the UTF-8 byte order mark at the start of a stream is dropped (as
 * WHATWG decoding does); an `id` value containing a NUL is ignored (WHATWG); a
 * `retry` field is ignored like any unknown field. gw_sse_feed sets *stopped to 0
 * when no callback stopped it.
 */
#include "core/sse.h"

#include <string.h>

/*
 * Decoder states (gw_sse_t.state). The partial line, if any, is in p->line in every
 * state but FAILED.
 */
enum {
    GW_SSE_START,    /* no line completed yet: the first line may start with a BOM to drop.
                        Goes to LINE or AFTER_CR when the first line ends. */
    GW_SSE_LINE,     /* inside a line (or at its start) until CR or LF. LF ends the line
                        and stays here; CR ends it and goes to AFTER_CR. */
    GW_SSE_AFTER_CR, /* the last line ended with CR: one LF right after it belongs to the
                        same line end (also across feeds). Then back to LINE. */
    GW_SSE_FAILED,   /* a line or an event passed max_event; every feed fails. Final. */
};

static const char bom[3] = {'\xEF', '\xBB', '\xBF'};

void gw_sse_init(gw_sse_t *p, size_t max_event)
{
    p->state = GW_SSE_START;
    gw_buf_init(&p->line, max_event);
    gw_buf_init(&p->data, max_event);
    gw_buf_init(&p->event, max_event);
    gw_buf_init(&p->id, max_event);
    p->has_data = 0;
    p->max_event = max_event;
}

void gw_sse_free(gw_sse_t *p)
{
    gw_buf_free(&p->line);
    gw_buf_free(&p->data);
    gw_buf_free(&p->event);
    gw_buf_free(&p->id);
    p->has_data = 0;
}

/* ---------------------------------------------------------------------------------
 * Decoder
 * ------------------------------------------------------------------------------- */

static const char *buf_str(const gw_buf_t *b)
{
    return b->ptr ? b->ptr : "";
}

/* A blank line: dispatch the event if it has data, and start a new one either way. */
static int dispatch(gw_sse_t *p, gw_sse_event_cb on_event, void *data)
{
    gw_sse_event_t ev;
    int stop = 0;

    if (p->has_data) {
        ev.kind = GW_SSE_EVENT;
        ev.data = buf_str(&p->data);
        ev.data_len = p->data.len;
        ev.event = buf_str(&p->event);
        ev.event_len = p->event.len;
        ev.id = buf_str(&p->id);
        ev.id_len = p->id.len;
        stop = on_event(data, &ev);
    }
    gw_buf_reset(&p->data);
    gw_buf_reset(&p->event);
    gw_buf_reset(&p->id);
    p->has_data = 0;
    return stop;
}

/*
 * A comment line; text is what follows the ':'. The callback needs a NUL after the
 * text: a line assembled in p->line has one, a line parsed in place is copied into
 * p->line (which is then empty, and the line is within max_event, so this fits).
 */
static int comment(gw_sse_t *p, const char *text, size_t n, int in_line_buf,
                   gw_sse_event_cb on_event, void *data)
{
    gw_sse_event_t ev;

    if (!in_line_buf) {
        gw_buf_reset(&p->line);
        if (gw_buf_add(&p->line, text, n) != GW_OK)
            return 0; /* not reached: n < max_event */
        text = p->line.ptr;
    }
    ev.kind = GW_SSE_COMMENT;
    ev.data = text;
    ev.data_len = n;
    ev.event = "";
    ev.event_len = 0;
    ev.id = "";
    ev.id_len = 0;
    return on_event(data, &ev);
}

/*
 * Handles one complete line (without its line end). in_line_buf says whether s points
 * into p->line. Sets *stop to the callback's verdict when it called one.
 */
static gw_err_t on_line(gw_sse_t *p, const char *s, size_t n, int in_line_buf,
                        gw_sse_event_cb on_event, void *data, int *stop)
{
    const char *colon, *value;
    size_t name_len, value_len;

    if (n == 0) {
        *stop = dispatch(p, on_event, data);
        return GW_OK;
    }
    if (s[0] == ':') {
        *stop = comment(p, s + 1, n - 1, in_line_buf, on_event, data);
        return GW_OK;
    }

    colon = memchr(s, ':', n);
    if (colon) {
        name_len = (size_t)(colon - s);
        value = colon + 1;
        value_len = n - name_len - 1;
        if (value_len > 0 && value[0] == ' ') {
            value++;
            value_len--;
        }
    } else {
        /* A line without a colon is a field name with an empty value. */
        name_len = n;
        value = s + n;
        value_len = 0;
    }

    if (name_len == 4 && memcmp(s, "data", 4) == 0) {
        if (p->has_data && gw_buf_add(&p->data, "\n", 1) != GW_OK)
            return GW_ETOOBIG;
        if (gw_buf_add(&p->data, value, value_len) != GW_OK)
            return GW_ETOOBIG;
        p->has_data = 1;
    } else if (name_len == 5 && memcmp(s, "event", 5) == 0) {
        gw_buf_reset(&p->event);
        if (gw_buf_add(&p->event, value, value_len) != GW_OK)
            return GW_ETOOBIG;
    } else if (name_len == 2 && memcmp(s, "id", 2) == 0) {
        if (memchr(value, '\0', value_len) == NULL) {
            gw_buf_reset(&p->id);
            if (gw_buf_add(&p->id, value, value_len) != GW_OK)
                return GW_ETOOBIG;
        }
    }
    /* Anything else, `retry` included, is ignored. */
    return GW_OK;
}

gw_err_t gw_sse_feed(gw_sse_t *p, const char *buf, size_t len, gw_sse_event_cb on_event,
                     void *data, int *stopped)
{
    gw_err_t rc = GW_OK;
    const char *s, *end, *lf = NULL, *cr = NULL;
    int stop = 0;

    if (stopped)
        *stopped = 0;
    if (p->state == GW_SSE_FAILED)
        return GW_ETOOBIG;
    if (len == 0)
        return GW_OK;

    s = buf;
    end = buf + len;
    while (s < end) {
        const char *line;
        size_t n;
        int in_line_buf;

        if (p->state == GW_SSE_AFTER_CR) {
            p->state = GW_SSE_LINE;
            if (*s == '\n') {
                s++;
                continue;
            }
        }

        /*
         * Next line end. lf is the next LF at or after s (or end); cr is the next CR
         * before lf, or lf itself when there is none, so cr is always the line end.
         */
        if (lf == NULL || lf < s) {
            lf = memchr(s, '\n', (size_t)(end - s));
            if (lf == NULL)
                lf = end;
        }
        if (cr == NULL || cr < s) {
            cr = memchr(s, '\r', (size_t)(lf - s));
            if (cr == NULL)
                cr = lf;
        }

        if (cr == end) {
            /* No line end in the rest of the input: keep the partial line. */
            if (gw_buf_add(&p->line, s, (size_t)(end - s)) != GW_OK) {
                rc = GW_ETOOBIG;
                goto out;
            }
            break;
        }

        if (p->line.len == 0) {
            line = s;
            n = (size_t)(cr - s);
            in_line_buf = 0;
            if (n > p->max_event) {
                rc = GW_ETOOBIG;
                goto out;
            }
        } else {
            if (gw_buf_add(&p->line, s, (size_t)(cr - s)) != GW_OK) {
                rc = GW_ETOOBIG;
                goto out;
            }
            line = p->line.ptr;
            n = p->line.len;
            in_line_buf = 1;
        }

        if (p->state == GW_SSE_START && n >= sizeof(bom) && memcmp(line, bom, sizeof(bom)) == 0) {
            line += sizeof(bom);
            n -= sizeof(bom);
        }
        p->state = (*cr == '\r') ? GW_SSE_AFTER_CR : GW_SSE_LINE;
        s = cr + 1;

        rc = on_line(p, line, n, in_line_buf, on_event, data, &stop);
        gw_buf_reset(&p->line);
        if (rc != GW_OK || stop)
            goto out;
    }

out:
    if (rc != GW_OK)
        p->state = GW_SSE_FAILED;
    else if (stop && stopped)
        *stopped = stop;
    return rc;
}

/* ---------------------------------------------------------------------------------
 * Encoder
 *
 * A data value is split into lines at LF, CR and CRLF, the same line ends the decoder
 * accepts, so the output is always well-formed and a decoder gives back the value
 * with CR and CRLF turned into LF. An event name or comment cannot span lines: one
 * containing CR or LF is refused with GW_EPARAM rather than let it inject fields.
 * Both encoders check the whole size first, so a failure leaves `out` unchanged.
 * ------------------------------------------------------------------------------- */

static int has_line_end(const char *s, size_t n)
{
    return n > 0 && (memchr(s, '\n', n) != NULL || memchr(s, '\r', n) != NULL);
}

/* The end of the data line starting at s: its CR or LF, or end. */
static const char *data_line_end(const char *s, const char *end)
{
    const char *lf = memchr(s, '\n', (size_t)(end - s));
    const char *cr = memchr(s, '\r', (size_t)((lf ? lf : end) - s));

    return cr ? cr : lf ? lf : end;
}

/* Just past the line end at q (q < end): CRLF counts as one. */
static const char *skip_line_end(const char *q, const char *end)
{
    if (*q == '\r' && q + 1 < end && q[1] == '\n')
        return q + 2;
    return q + 1;
}

static int fits(const gw_buf_t *out, size_t need)
{
    return need <= out->max && out->len <= out->max - need;
}

#define DATA_PREFIX "data: "
#define EVENT_PREFIX "event: "
#define LIT_LEN(s) (sizeof(s) - 1)

gw_err_t gw_sse_encode(gw_buf_t *out, const char *event, size_t event_len, const char *data,
                       size_t data_len)
{
    const char *s, *end, *q;
    size_t need = 1; /* the blank line */
    int one_line;

    if (has_line_end(event, event_len))
        return GW_EPARAM;
    if (data_len == 0)
        data = "";

    /* Size first. The common case, one JSON line, needs no line walk. */
    if (event_len > 0)
        need += LIT_LEN(EVENT_PREFIX) + event_len + 1;
    end = data + data_len;
    one_line = !has_line_end(data, data_len);
    if (one_line) {
        need += LIT_LEN(DATA_PREFIX) + data_len + 1;
    } else {
        for (s = data;; s = skip_line_end(q, end)) {
            q = data_line_end(s, end);
            need += LIT_LEN(DATA_PREFIX) + (size_t)(q - s) + 1;
            if (q == end)
                break;
        }
    }
    if (!fits(out, need))
        return GW_ETOOBIG;

    /* Nothing below can fail: it all fits under the ceiling. */
    if (event_len > 0) {
        gw_buf_add(out, EVENT_PREFIX, LIT_LEN(EVENT_PREFIX));
        gw_buf_add(out, event, event_len);
        gw_buf_add(out, "\n", 1);
    }
    for (s = data;; s = skip_line_end(q, end)) {
        q = one_line ? end : data_line_end(s, end);
        gw_buf_add(out, DATA_PREFIX, LIT_LEN(DATA_PREFIX));
        gw_buf_add(out, s, (size_t)(q - s));
        gw_buf_add(out, "\n", 1);
        if (q == end)
            break;
    }
    gw_buf_add(out, "\n", 1);
    return GW_OK;
}

gw_err_t gw_sse_encode_comment(gw_buf_t *out, const char *text, size_t len)
{
    if (has_line_end(text, len))
        return GW_EPARAM;
    if (!fits(out, len + 3))
        return GW_ETOOBIG;
    gw_buf_add(out, ":", 1);
    gw_buf_add(out, text, len);
    gw_buf_add(out, "\n\n", 2);
    return GW_OK;
}
