/*
 * fuzz_sse.c - libFuzzer target for the SSE decoder and encoder (core/sse.c).
 *
 * Input: byte 0 picks the event size limit, byte 1 seeds the split points, the rest
 * is the stream. Properties checked, beyond "no crash, no leak, no UB":
 *   1. Feeding the stream in one piece or split at arbitrary points gives the same
 *      events (kind, data, event name, id) and the same final result (GW_OK or
 *      GW_ETOOBIG) - the decoder is a true incremental state machine.
 *   2. Every event is NUL-terminated at data[data_len] and no larger than the limit.
 *   3. Re-encoding the events with gw_sse_encode / gw_sse_encode_comment and decoding
 *      the result gives the same kinds, data and event names back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/sse.h"

#define OUT_MAX (8u * 1024 * 1024)

typedef struct rec {
    gw_buf_t log;    /* serialized events */
    size_t max;
    int with_id;
} rec_t;

static void put_field(gw_buf_t *b, const char *p, size_t n)
{
    char len[sizeof(size_t)];

    memcpy(len, &n, sizeof(n));
    if (gw_buf_add(b, len, sizeof(len)) != GW_OK || gw_buf_add(b, p, n) != GW_OK)
        abort();
}

static int on_event(void *ud, const gw_sse_event_t *ev)
{
    rec_t *r = ud;
    char kind = (char)ev->kind;

    if (ev->data[ev->data_len] != '\0' || ev->event[ev->event_len] != '\0' ||
        ev->id[ev->id_len] != '\0')
        abort();
    if (ev->data_len > r->max || ev->event_len > r->max || ev->id_len > r->max)
        abort();
    if (gw_buf_add(&r->log, &kind, 1) != GW_OK)
        abort();
    put_field(&r->log, ev->data, ev->data_len);
    put_field(&r->log, ev->event, ev->event_len);
    if (r->with_id)
        put_field(&r->log, ev->id, ev->id_len);
    return 0;
}

static gw_err_t decode(const uint8_t *p, size_t n, size_t max, unsigned seed, int with_id,
                       gw_buf_t *log)
{
    gw_sse_t d;
    rec_t r;
    gw_err_t rc = GW_OK;
    size_t off = 0;

    gw_sse_init(&d, max);
    gw_buf_init(&r.log, OUT_MAX);
    r.max = max;
    r.with_id = with_id;
    while (off < n && rc == GW_OK) {
        size_t chunk = n - off;

        if (seed != 0) {
            seed = seed * 1103515245u + 12345u;
            chunk = 1 + (seed >> 16) % 7; /* 1..7 bytes: splits everywhere */
            if (chunk > n - off)
                chunk = n - off;
        }
        rc = gw_sse_feed(&d, (const char *)p + off, chunk, on_event, &r, NULL);
        off += chunk;
    }
    gw_sse_free(&d);
    *log = r.log;
    return rc;
}

/* Walks a serialized log and re-encodes every record into out. */
static void reencode(const gw_buf_t *log, gw_buf_t *out)
{
    size_t i = 0;

    while (i < log->len) {
        char kind = log->ptr[i++];
        size_t dl, el;
        const char *dp, *ep;

        memcpy(&dl, log->ptr + i, sizeof(dl));
        dp = log->ptr + i + sizeof(dl);
        i += sizeof(dl) + dl;
        memcpy(&el, log->ptr + i, sizeof(el));
        ep = log->ptr + i + sizeof(el);
        i += sizeof(el) + el;
        if (kind == GW_SSE_COMMENT) {
            if (gw_sse_encode_comment(out, dp, dl) != GW_OK)
                abort();
        } else if (gw_sse_encode(out, ep, el, dp, dl) != GW_OK) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t limits[] = {1, 2, 7, 16, 64, 1024, 65536, 8u * 1024 * 1024};
    gw_buf_t whole, split, enc, again, noid;
    gw_err_t rc1, rc2;
    size_t max;
    unsigned seed;

    if (size < 2)
        return 0;
    max = limits[data[0] % (sizeof(limits) / sizeof(limits[0]))];
    seed = (unsigned)data[1] | 1u;
    data += 2;
    size -= 2;

    /* 1. whole vs split */
    rc1 = decode(data, size, max, 0, 1, &whole);
    rc2 = decode(data, size, max, seed, 1, &split);
    if (rc1 != rc2 || whole.len != split.len ||
        (whole.len && memcmp(whole.ptr, split.ptr, whole.len) != 0))
        abort();
    gw_buf_free(&split);
    gw_buf_free(&whole);

    /* 3. decode -> encode -> decode (ids are not encoded: compare without them) */
    if (rc1 == GW_OK) {
        rc1 = decode(data, size, max, 0, 0, &noid);
        gw_buf_init(&enc, OUT_MAX * 2);
        reencode(&noid, &enc);
        /* the encoding adds "data: " and line ends: decode it without a tight limit */
        rc2 = decode((const uint8_t *)(enc.ptr ? enc.ptr : ""), enc.len, OUT_MAX, 0, 0, &again);
        if (rc1 != GW_OK || rc2 != GW_OK || noid.len != again.len ||
            (noid.len && memcmp(noid.ptr, again.ptr, noid.len) != 0))
            abort();
        gw_buf_free(&again);
        gw_buf_free(&enc);
        gw_buf_free(&noid);
    }
    return 0;
}
