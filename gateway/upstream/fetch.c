/* fetch.c - buffered backend requests on the upstream thread. */
#include "upstream/fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

#define GW_CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    gw_fetch_t *f = ud;
    size_t n = size * nmemb;

    return gw_buf_add(&f->body, p, n) == GW_OK ? n : 0;
}

static void on_done(gw_xfer_t *x, CURLcode rc)
{
    gw_fetch_t *f = GW_CONTAINER_OF(x, gw_fetch_t, x);

    f->rc = rc;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &f->status);
    if (f->cb)
        f->cb(f, f->data);
}

static void on_unused(gw_xfer_t *x)
{
    (void)x;
}

static void on_deadline(gw_xfer_t *x)
{
    gw_fetch_t *f = GW_CONTAINER_OF(x, gw_fetch_t, x);

    gw_upstream_abort(f->up, x, CURLE_OPERATION_TIMEDOUT);
}

static const gw_xfer_ops_t fetch_ops = {on_done, on_unused, on_deadline, on_unused};

gw_fetch_t *gw_fetch_start(gw_upstream_t *u, const char *base_url, const char *path,
                           const char *body, size_t body_len, const char *api_key,
                           long timeout_ms, size_t max_bytes, gw_fetch_cb cb, void *data)
{
    gw_fetch_t *f = gw_xcalloc(1, sizeof(*f));
    CURL *e = curl_easy_init();
    gw_buf_t url;

    gw_xfer_init(&f->x, &fetch_ops);
    f->up = u;
    f->cb = cb;
    f->data = data;
    gw_buf_init(&f->body, max_bytes);
    gw_buf_init(&url, 8192);
    gw_buf_adds(&url, base_url);
    gw_buf_adds(&url, path);
    f->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    f->hdrs = curl_slist_append(f->hdrs, "Expect:");
    if (api_key) {
        char auth[1024];

        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", api_key);
        f->hdrs = curl_slist_append(f->hdrs, auth);
    }
    f->x.easy = e;
    curl_easy_setopt(e, CURLOPT_URL, url.ptr);
    gw_buf_free(&url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &f->x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, 4L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->hdrs);
    if (body) {
        f->req_body = gw_xstrndup(body, body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, f->req_body);
    }
    f->x.deadline_ms = gw_now_ms() + (uint64_t)timeout_ms;
    gw_upstream_add(u, &f->x);
    return f;
}

static void release(gw_fetch_t *f)
{
    if (f->x.easy)
        curl_easy_cleanup(f->x.easy);
    curl_slist_free_all(f->hdrs);
    gw_buf_free(&f->body);
    free(f->req_body);
    free(f);
}

void gw_fetch_cancel(gw_fetch_t *f)
{
    if (f == NULL)
        return;
    f->cb = NULL; /* gw_upstream_abort calls on_done: make it silent */
    gw_upstream_abort(f->up, &f->x, CURLE_ABORTED_BY_CALLBACK);
    release(f);
}

void gw_fetch_free(gw_fetch_t *f)
{
    if (f)
        release(f);
}

const char *gw_fetch_error(const gw_fetch_t *f, char *buf, size_t cap)
{
    if (f->rc != CURLE_OK)
        snprintf(buf, cap, "%s", f->errbuf[0] ? f->errbuf : curl_easy_strerror(f->rc));
    else
        snprintf(buf, cap, "HTTP %ld: %.200s", f->status, f->body.ptr ? f->body.ptr : "");
    return buf;
}
