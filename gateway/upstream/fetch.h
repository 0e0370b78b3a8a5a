/*
 * fetch.h - small buffered HTTP requests to a backend, made on the upstream thread
 * (tokenizer lookups, /apply-template, /v1/models). Every function here runs on the
 * upstream thread only; the callback runs there too, once, unless the fetch was
 * cancelled first.
 */
#ifndef GW_UPSTREAM_FETCH_H
#define GW_UPSTREAM_FETCH_H

#include "core/buf.h"
#include "upstream/client.h"

typedef struct gw_fetch gw_fetch_t;
typedef void (*gw_fetch_cb)(gw_fetch_t *f, void *data);

struct gw_fetch {
    gw_xfer_t x;
    gw_upstream_t *up;
    long status;          /* HTTP status, 0 if no answer */
    CURLcode rc;
    gw_buf_t body;        /* the answer's body */
    char errbuf[CURL_ERROR_SIZE];
    gw_fetch_cb cb;
    void *data;
    char *req_body;
    struct curl_slist *hdrs;
};

/* Starts base_url + path (POST with body when body != NULL, else GET). The answer is
 * capped at max_bytes. Never NULL. */
gw_fetch_t *gw_fetch_start(gw_upstream_t *u, const char *base_url, const char *path,
                           const char *body, size_t body_len, const char *api_key,
                           long timeout_ms, size_t max_bytes, gw_fetch_cb cb, void *data);
/* Stops a running fetch without calling back, and frees it. */
void gw_fetch_cancel(gw_fetch_t *f);
/* Frees a finished fetch (from or after its callback). */
void gw_fetch_free(gw_fetch_t *f);
/* A one-line description of a failed fetch, for error messages. */
const char *gw_fetch_error(const gw_fetch_t *f, char *buf, size_t cap);

#endif
