/*
 * conf.h - the gateway's configuration: one JSON file, loaded and validated at start.
 *
 * File shape (every key optional except models; unknown keys are errors, so a typo
 * cannot silently do nothing):
 *
 *   {
 *     "listen":   {"host": "127.0.0.1", "port": 8000, "threads": 2, "upstream_threads": 1},
 *     "limits":   {"max_body_bytes": 16777216, "max_connections": 4096,
 *                  "max_stream_buffer_bytes": 1048576, "max_response_bytes": 67108864,
 *                  "max_stop_token_ids": 64},
 *     "timeouts": {"connect_ms": 3000, "first_byte_ms": 600000, "idle_stream_ms": 300000,
 *                  "request_ms": 60000},
 *     "log":      {"level": "info"},
 *     "backends": {"vram_budget_mb": 16000, "ttl_s": 0, "preload": ["gemma3-4b"],
 *                  "start_timeout_ms": 120000, "stop_grace_ms": 5000, "queue_max": 64,
 *                  "swap_wait_ms": 60000, "restart_backoff_ms": 1000,
 *                  "restart_backoff_max_ms": 60000, "health_interval_ms": 50,
 *                  "loading_ping_ms": 3000},
 *     "auth":     {"keys": {"laptop": {"sha256": "<64 hex digits>"},
 *                           "webui":  {"sha256": "...", "models": ["qwen"], "max_concurrent": 4}},
 *                  "allow_unauthenticated": false},
 *     "tls":      {"cert": "/etc/llama-gateway/cert.pem", "key": "/etc/llama-gateway/key.pem"},
 *     "cors":     {"origins": ["http://openwebui.lan:3000"], "max_age_s": 600},
 *     "models": {
 *       "qwen": {"upstream": "http://127.0.0.1:8081", "aliases": ["gpt-4o-mini"],
 *                "api_key": "secret-for-the-backend"},
 *       "gemma3-4b": {"command": ["llama-server", "-m", "/models/g.gguf", "--host",
 *                                 "127.0.0.1", "--port", "${PORT}", "--alias", "${MODEL}"],
 *                     "env": {"HIP_VISIBLE_DEVICES": "0"}, "vram_mb": 3400, "ttl_s": 600}
 *     }
 *   }
 *
 * Model names and aliases share one namespace: a duplicate is an error. Errors name
 * the key path: "models.qwen.upstream: expected an http(s) URL".
 *
 * A model has a fixed `upstream`, or a `command` that the supervisor (backend/
 * supervisor.h) runs on demand. In a command's arguments and in `env` values, ${PORT}
 * (a free loopback port chosen at each start) and ${MODEL} (the model's name) expand;
 * any other ${NAME} is an error. A command that uses ${PORT} has no `upstream` (it is
 * http://127.0.0.1:PORT); one that does not must name an http://IP:PORT upstream, which
 * the health check connects to.
 * Security (issue 5): an API key is stored as its name and the SHA-256 of the key
 * (`llama-gateway keygen NAME` prints both); `models` limits a key to some models
 * (names or aliases, each must be configured; a key then reaches the model under every
 * one of its names) and `max_concurrent` to that many requests at once (0 = no limit).
 * A listen.host that is not a loopback address (127.0.0.0/8, ::1) needs at least one
 * key unless auth.allow_unauthenticated is true. tls.cert and tls.key go together.
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

    /* Spawned backends (n_command > 0); upstream is NULL when uses_port is set. */
    char **command;      /* argv template, n_command strings; NULL for a fixed upstream */
    size_t n_command;
    char **env_names;    /* n_env names and values (values are templates too) */
    char **env_values;
    size_t n_env;
    int uses_port;       /* ${PORT} appears in the command or in an env value */
    unsigned vram_mb;    /* VRAM the backend needs, counted against vram_budget_mb; 0 = none */
    unsigned ttl_s;      /* idle unload after this many seconds; 0 = never (default: backends.ttl_s) */
    unsigned start_timeout_ms; /* default: backends.start_timeout_ms */
} gw_model_conf_t;

typedef struct gw_key_conf {
    char *name;                   /* the key under "auth.keys"; shown in logs */
    unsigned char sha256[32];     /* SHA-256 of the key text */
    char **models;                /* allowed model names/aliases; NULL = every model */
    size_t n_models;
    unsigned max_concurrent;      /* 0 = no limit */
} gw_key_conf_t;

typedef struct gw_conf {
    char *listen_host;            /* default "127.0.0.1" */
    uint16_t listen_port;         /* default 8000; 0 = pick a free port */
    unsigned threads;             /* MHD worker threads, default 2, 1..64 */
    unsigned upstream_threads;    /* curl-multi upstream threads, default 1, 1..16 */

    size_t max_body_bytes;        /* default 16 MiB */
    unsigned max_connections;     /* default 4096 */
    size_t max_stream_buffer;     /* per-stream relay buffer high-water mark, default 1 MiB */
    size_t max_response_bytes;    /* buffered (non-stream) backend body cap, default 64 MiB */
    unsigned max_stop_token_ids;  /* entries allowed in a request's stop_token_ids, default 64 */
    size_t max_header_bytes;      /* request header block (names + values), default 4 KiB */
    unsigned max_headers;         /* request header fields, default 64 */
    size_t max_url_bytes;         /* request target, default 2 KiB */
    unsigned max_json_depth;      /* nesting of a JSON request body, default 128 */
    unsigned max_connections_per_ip; /* default 256; 0 = no limit */

    unsigned connect_timeout_ms;  /* default 3000 */
    unsigned first_byte_timeout_ms; /* backend response headers, default 600000 */
    unsigned idle_stream_timeout_ms; /* silence on an open backend response, default 300000 */
    unsigned request_timeout_ms;  /* client must send its request within, default 60000 */

    int log_level;                /* 0 error, 1 warn, 2 info, 3 debug; default 2 */

    /* backends: the supervisor of spawned models */
    unsigned vram_budget_mb;      /* 0 = no budget */
    unsigned ttl_s;               /* default idle unload for spawned models; 0 = never */
    unsigned start_timeout_ms;    /* spawn to /health 200, default 120000 */
    unsigned stop_grace_ms;       /* SIGTERM to SIGKILL, default 5000 */
    unsigned queue_max;           /* requests waiting per model for a start, default 64 */
    unsigned swap_wait_ms;        /* wait for VRAM held by busy models, default 60000 */
    unsigned backoff_ms;          /* first restart backoff after a failure, default 1000 */
    unsigned backoff_max_ms;      /* ceiling of the doubling backoff, default 60000 */
    unsigned health_interval_ms;  /* longest gap between /health probes, default 50 */
    unsigned loading_ping_ms;     /* SSE comment period for streams waiting on a start */
    size_t *preload;              /* indexes into models, started at boot */
    size_t n_preload;

    gw_model_conf_t *models;      /* n_models entries, in file order */
    size_t n_models;

    gw_key_conf_t *keys;          /* n_keys entries, in file order; none = no auth */
    size_t n_keys;
    int allow_unauthenticated;    /* serve a non-loopback address without keys */

    char *tls_cert;               /* PEM file paths; both NULL = plain HTTP */
    char *tls_key;

    char **cors_origins;          /* allowed browser origins ("*" = any); none by default */
    size_t n_cors_origins;
    unsigned cors_max_age_s;      /* preflight cache time, default 600 */
} gw_conf_t;

/* Parses and validates JSON text. On success *out is owned by the caller (gw_conf_free). */
gw_err_t gw_conf_load_text(const char *text, size_t len, gw_conf_t **out, gw_errbuf_t *err);
/* Reads the file and calls gw_conf_load_text; file errors are reported with the path. */
gw_err_t gw_conf_load_file(const char *path, gw_conf_t **out, gw_errbuf_t *err);
void gw_conf_free(gw_conf_t *c);

/*
 * Expands ${PORT} and ${MODEL} in tmpl (a command argument or env value that passed
 * validation). Any other '$' is copied as is. Pure; returns a malloc'd string the
 * caller frees. Any thread.
 */
char *gw_conf_expand(const char *tmpl, const char *model, unsigned port);

/*
 * Splits "http://IP:PORT[/path]" (IPv4, [IPv6] or localhost = 127.0.0.1; the port is
 * required) into host (NUL-terminated, at most host_cap bytes), port and path (points
 * into url, "" or "/..."). Any out pointer may be NULL. Returns 0, or -1 for another
 * form. Pure; any thread.
 */
int gw_conf_split_http_url(const char *url, char *host, size_t host_cap, unsigned *port,
                           const char **path);
/* 1 if name is a valid API key name: 1 to 64 of [A-Za-z0-9._-]. */
int gw_conf_key_name_ok(const char *name);

/* 1 if host is an IPv4 address in 127.0.0.0/8, the IPv6 address ::1 (or ::ffff:127.x), or
 * the name "localhost". Any other host name counts as exposed. */
int gw_conf_host_is_loopback(const char *host);

#endif
