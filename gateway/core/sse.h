/*
 * sse.h - incremental Server-Sent Events decoder and encoder (pure: no I/O, no threads).
 *
 * The decoder follows the WHATWG event-stream rules: lines end in CRLF, LF or CR
 * (a CR at the end of one feed and an LF at the start of the next are one line end);
 * a line starting with ':' is a comment; "field: value" strips one space after the
 * colon; several `data` lines are joined with '\n'; a blank line dispatches the event
 * (an event with no data line is not dispatched, but `event:`/`id:` are reset).
 * Unknown fields are ignored. Input may be split at any byte.
 *
 * Unlike the browser algorithm, comments are reported to the caller (a relay forwards
 * keep-alive pings), each as its own callback with the text after the ':'.
 *
 * A single line or a single event's data larger than `max_event` bytes makes the
 * decoder fail with GW_ETOOBIG; it then stays failed.
 */
#ifndef GW_CORE_SSE_H
#define GW_CORE_SSE_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

typedef enum gw_sse_kind {
    GW_SSE_EVENT,   /* a dispatched event: data (joined), event name, id */
    GW_SSE_COMMENT, /* a comment line: data = text after ':' (leading space kept) */
} gw_sse_kind_t;

typedef struct gw_sse_event {
    gw_sse_kind_t kind;
    const char *data;   /* data_len bytes, followed by a NUL */
    size_t data_len;
    const char *event;  /* "" when the event had no `event:` field */
    size_t event_len;
    const char *id;     /* "" when none */
    size_t id_len;
} gw_sse_event_t;

/* Returns 0 to continue, non-zero to stop the feed (see gw_sse_feed). The event's
 * pointers are valid only during the call. */
typedef int (*gw_sse_event_cb)(void *data, const gw_sse_event_t *ev);

typedef struct gw_sse {
    int state;          /* see sse.c: GW_SSE_LINE, GW_SSE_AFTER_CR, GW_SSE_FAILED */
    gw_buf_t line;      /* the current, incomplete line */
    gw_buf_t data;      /* data lines of the current event, joined by '\n' */
    gw_buf_t event;     /* event name of the current event */
    gw_buf_t id;        /* last event id of the current event */
    int has_data;       /* a data line was seen for the current event */
    size_t max_event;
} gw_sse_t;

void gw_sse_init(gw_sse_t *p, size_t max_event);
void gw_sse_free(gw_sse_t *p);

/*
 * Feeds len bytes. Calls on_event for each complete event or comment, in order.
 * Returns GW_OK, or GW_ETOOBIG (limit passed; the decoder is now failed). If a
 * callback returns non-zero, feeding stops at once, *stopped (if non-NULL) is set to
 * that value and GW_OK is returned; the rest of buf is not consumed and the decoder
 * must not be fed again.
 */
gw_err_t gw_sse_feed(gw_sse_t *p, const char *buf, size_t len, gw_sse_event_cb on_event,
                     void *data, int *stopped);

/* Encodes one event as `event: X\n` (if any) + one `data: ` line per data line + `\n`. */
gw_err_t gw_sse_encode(gw_buf_t *out, const char *event, size_t event_len, const char *data,
                       size_t data_len);
/* Encodes a comment line `:text\n\n`. */
gw_err_t gw_sse_encode_comment(gw_buf_t *out, const char *text, size_t len);

#endif
