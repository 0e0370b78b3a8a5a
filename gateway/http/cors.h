/*
 * cors.h - Cross-Origin Resource Sharing for browser clients (Open WebUI and the like).
 *
 * Nothing is allowed unless the configuration lists the origin (cors.origins; "*"
 * allows any). The gateway answers every preflight itself (OPTIONS with Origin and
 * Access-Control-Request-Method), without a key and without asking a backend: 204, and
 * the Access-Control-Allow-* headers only when the origin is allowed. Actual responses
 * carry Access-Control-Allow-Origin (the request's origin, echoed) only for an allowed
 * origin; whenever CORS is configured they carry "Vary: Origin". The backend's own
 * Access-Control-* headers never reach the client (server.c drops them).
 *
 * Read-only after gw_cors_new: any thread.
 */
#ifndef GW_HTTP_CORS_H
#define GW_HTTP_CORS_H

#include <microhttpd.h>

#include "conf/conf.h"

typedef struct gw_cors gw_cors_t;

gw_cors_t *gw_cors_new(const gw_conf_t *conf); /* conf borrowed */
void gw_cors_free(gw_cors_t *c);
/* 1 if at least one origin is configured. */
int gw_cors_enabled(const gw_cors_t *c);
/* 1 if origin (the Origin header's value, NULL when absent) is allowed. */
int gw_cors_allowed(const gw_cors_t *c, const char *origin);

/* Adds the headers of an actual response. origin_ok is gw_cors_allowed's answer. */
void gw_cors_add_actual(const gw_cors_t *c, struct MHD_Response *resp, const char *origin,
                        int origin_ok);
/*
 * Adds the headers of a preflight answer: for an allowed origin the Allow-Origin,
 * -Methods, -Headers (the requested ones when they are a sane list of header names,
 * else the gateway's own list) and -Max-Age; Vary in any case.
 */
void gw_cors_add_preflight(const gw_cors_t *c, struct MHD_Response *resp, const char *origin,
                           int origin_ok, const char *request_headers);

#endif
