/* cors.c - origin allow-list and CORS response headers (cors.h). */
#include "http/cors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"

#define CORS_METHODS "GET, HEAD, POST, OPTIONS"
#define CORS_HEADERS "Authorization, Content-Type, X-Api-Key, X-Request-Id"
#define CORS_EXPOSE "X-Request-Id, Retry-After"
#define CORS_REQ_HEADERS_MAX 1024 /* longer Access-Control-Request-Headers are not echoed */

struct gw_cors {
    const gw_conf_t *conf;
    int any; /* "*" is in the list */
};

gw_cors_t *gw_cors_new(const gw_conf_t *conf)
{
    gw_cors_t *c = gw_xcalloc(1, sizeof(*c));
    size_t i;

    c->conf = conf;
    for (i = 0; i < conf->n_cors_origins; i++)
        if (strcmp(conf->cors_origins[i], "*") == 0)
            c->any = 1;
    return c;
}

void gw_cors_free(gw_cors_t *c)
{
    free(c);
}

int gw_cors_enabled(const gw_cors_t *c)
{
    return c->conf->n_cors_origins > 0;
}

/* An origin we are willing to echo: printable ASCII without blanks, bounded. */
static int sane_origin(const char *o)
{
    size_t i, n = strlen(o);

    if (n == 0 || n > 255)
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)o[i] <= 0x20 || (unsigned char)o[i] >= 0x7f || o[i] == ',')
            return 0;
    return 1;
}

int gw_cors_allowed(const gw_cors_t *c, const char *origin)
{
    size_t i;

    if (origin == NULL || !sane_origin(origin))
        return 0;
    if (c->any)
        return 1;
    for (i = 0; i < c->conf->n_cors_origins; i++)
        if (strcasecmp(origin, c->conf->cors_origins[i]) == 0)
            return 1;
    return 0;
}

/* A comma-separated list of header names (tokens), as Access-Control-Request-Headers. */
static int sane_header_list(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > CORS_REQ_HEADERS_MAX)
        return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                     "!#$%&'*+-.^_`|~, ") == n;
}

void gw_cors_add_actual(const gw_cors_t *c, struct MHD_Response *resp, const char *origin,
                        int origin_ok)
{
    if (!gw_cors_enabled(c))
        return;
    MHD_add_response_header(resp, "Vary", "Origin");
    if (!origin_ok)
        return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(resp, "Access-Control-Expose-Headers", CORS_EXPOSE);
}

void gw_cors_add_preflight(const gw_cors_t *c, struct MHD_Response *resp, const char *origin,
                           int origin_ok, const char *request_headers)
{
    char age[16];

    MHD_add_response_header(resp, "Vary",
                            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
    if (!origin_ok)
        return;
    snprintf(age, sizeof(age), "%u", c->conf->cors_max_age_s);
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", CORS_METHODS);
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            request_headers && sane_header_list(request_headers)
                                ? request_headers
                                : CORS_HEADERS);
    MHD_add_response_header(resp, "Access-Control-Max-Age", age);
}
