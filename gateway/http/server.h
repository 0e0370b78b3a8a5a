/*
 * server.h - the front HTTP server (libmicrohttpd) and the request lifecycle.
 *
 * Owns the MHD daemon (internal epoll thread pool, suspend/resume), the route table,
 * the per-request context, and the relay objects that tie a client connection to an
 * upstream transfer. Only this module and upstream/client.c know that threads exist.
 */
#ifndef GW_HTTP_SERVER_H
#define GW_HTTP_SERVER_H

#include <stdint.h>

#include "backend/registry.h"
#include "conf/conf.h"
#include "core/err.h"

typedef struct gw_server gw_server_t;

/* Starts listening and serving. conf and reg are borrowed and must outlive the server. */
gw_err_t gw_server_start(const gw_conf_t *conf, gw_registry_t *reg, gw_server_t **out,
                         gw_errbuf_t *err);
/* The bound port (useful with port 0). */
uint16_t gw_server_port(const gw_server_t *s);
/* Graceful stop: stop accepting, end every stream, cancel every upstream, free. */
void gw_server_stop(gw_server_t *s);

#endif
