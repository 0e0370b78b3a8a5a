/*
 * conf.h - the gateway's configuration: one JSON file, loaded and validated at start.
 *
 * File shape (every key optional except models; unknown keys are errors, so a typo
 * cannot silently do nothing):
 *
 *   {
 *     "listen":   {"host": "127.0.0.1", "port": 8000, "threads": 2},
 *     "limits":   {"max_body_bytes": 16777216, "max_connections": 4096,
 *                  "max_stream_buffer_bytes": 1048576, "max_response_bytes": 67108864,
 *                  "max_stop_token_ids": 64},
 *     "timeouts": {"connect_ms": 3000, "first_byte_ms": 600000, "idle_stream_ms": 300000,
 *                  "request_ms": 60000},
 *     "log":      {"level": "info"},
 *     "models": {
 *       "qwen": {"upstream": "http://127.0.0.1:8081", "aliases": ["gpt-4o-mini"],
 *                "api_key": "secret-for-the-backend"}
 *     }
 *   }
 *
 * Model names and aliases share one namespace: a duplicate is an error. Errors name
 * the key path: "models.qwen.upstream: expected an http(s) URL".
 */
#ifndef GW_CONF_CONF_H
#define GW_CONF_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct gw_model_conf {
    char *name;          /* the key under "models" */
    char *upstream;      /* base URL without trailing '/', e.g. "http://127.0.0.1:8081" */
    char **aliases;      /* n_aliases strings */
    size_t n_aliases;
    char *api_key;       /* sent to the backend as "Authorization: Bearer"; NULL if none */
} gw_model_conf_t;

typedef struct gw_conf {
    char *listen_host;            /* default "127.0.0.1" */
    uint16_t listen_port;         /* default 8000; 0 = pick a free port */
    unsigned threads;             /* MHD worker threads, default 2, 1..64 */

    size_t max_body_bytes;        /* default 16 MiB */
    unsigned max_connections;     /* default 4096 */
    size_t max_stream_buffer;     /* per-stream relay buffer high-water mark, default 1 MiB */
    size_t max_response_bytes;    /* buffered (non-stream) backend body cap, default 64 MiB */
    unsigned max_stop_token_ids;  /* entries allowed in a request's stop_token_ids, default 64 */

    unsigned connect_timeout_ms;  /* default 3000 */
    unsigned first_byte_timeout_ms; /* backend response headers, default 600000 */
    unsigned idle_stream_timeout_ms; /* silence on an open backend response, default 300000 */
    unsigned request_timeout_ms;  /* client must send its request within, default 60000 */

    int log_level;                /* 0 error, 1 warn, 2 info, 3 debug; default 2 */

    gw_model_conf_t *models;      /* n_models entries, in file order */
    size_t n_models;
} gw_conf_t;

/* Parses and validates JSON text. On success *out is owned by the caller (gw_conf_free). */
gw_err_t gw_conf_load_text(const char *text, size_t len, gw_conf_t **out, gw_errbuf_t *err);
/* Reads the file and calls gw_conf_load_text; file errors are reported with the path. */
gw_err_t gw_conf_load_file(const char *path, gw_conf_t **out, gw_errbuf_t *err);
void gw_conf_free(gw_conf_t *c);

#endif
