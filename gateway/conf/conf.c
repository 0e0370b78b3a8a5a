/*
 * conf.c - loads and validates the gateway's JSON configuration (conf.h).
 *
 * This file owns the table of scalar keys (section, name, type, range, default and
 * where the value goes in gw_conf_t), the rules for the `models` object, and reading
 * the file. Every problem is reported as one message naming the full key path
 * ("limits.max_body_bytes: expected an integer from 1 to 1073741824"); nothing is
 * printed. The first problem in file order wins.
 *
 * Result codes: GW_EBADJSON for a JSON syntax error, GW_EPARAM for a validation
 * error, GW_EINTERNAL for a file that cannot be read, GW_ETOOBIG for a file over
 * CONF_MAX_FILE. The errbuf's `param` is left empty: it is for OpenAI errors.
 *
 * Names: a model name appears in URLs (`/upstream/{model}/...`), so it must be
 * non-empty without '/', whitespace or control characters. An alias is only matched
 * against the request's "model" field, so it may contain '/' (clients commonly send
 * Hugging Face ids such as "Qwen/Qwen2.5-7B-Instruct"), but not whitespace or control
 * characters. Names and aliases share one namespace. Within a model, `upstream` is
 * required unless a `command` that uses ${PORT} gives the backend's address: a model
 * without a backend cannot be served.
 *
 * Spawned models (`command`, `env`, `vram_mb`, `ttl_s`, `start_timeout_ms`) and the
 * `backends` section are checked together at the end, because they refer to each
 * other in any file order: a model's vram_mb must fit the budget, preload names must
 * be spawned models, and the backoff ceiling must not be below its start.
 *
 * Security sections (issue 5): `auth.keys` is an object of name -> {sha256, models,
 * max_concurrent}; key names are 1..64 of [A-Za-z0-9._-] (they appear in log lines),
 * the hash is 64 hex digits and two keys may not share one. Entries of `models` are
 * checked against the models once the whole file is read, as are the rules that tie
 * sections together (tls.cert with tls.key; a non-loopback listen.host needs keys or
 * auth.allow_unauthenticated). Those come after every per-key error, in that order.
 * `tls` holds paths only: the files are read when the server starts.
 *
 * Not thread-safe in one respect: file errors use strerror(). Load at start-up.
 */
#include "conf/conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>
#include <unistd.h>

#include "core/text.h"
#include "core/alloc.h"
#include "core/buf.h"

#define CONF_MAX_FILE (16u * 1024 * 1024) /* a config file larger than this is a mistake */
#define GIB (1024LL * 1024 * 1024)
#define DAY_MS 86400000LL
#define QUOTE_MAX 100 /* bytes of a name quoted in a message */

/* ---------------------------------------------------------------------------------
 * The scalar keys
 * ------------------------------------------------------------------------------- */

typedef enum key_type {
    KEY_HOST,      /* char *: non-empty string, no whitespace or control characters */
    KEY_U16,       /* uint16_t in [min, max] */
    KEY_UINT,      /* unsigned in [min, max] */
    KEY_SIZE,      /* size_t in [min, max] */
    KEY_LOG_LEVEL, /* int: index in log_levels */
} key_type_t;

typedef struct conf_key {
    const char *section;
    const char *name;
    key_type_t type;
    size_t offset;     /* of the field in gw_conf_t */
    json_int_t min;
    json_int_t max;
    json_int_t def;    /* default for numbers and the log level */
    const char *sdef;  /* default for strings */
} conf_key_t;

#define NUM(sec, key, type, field, lo, hi, dflt)                                              \
    {sec, key, type, offsetof(gw_conf_t, field), lo, hi, dflt, NULL}

static const conf_key_t conf_keys[] = {
    {"listen", "host", KEY_HOST, offsetof(gw_conf_t, listen_host), 0, 0, 0, "127.0.0.1"},
    NUM("listen", "port", KEY_U16, listen_port, 0, 65535, 8000),
    NUM("listen", "threads", KEY_UINT, threads, 1, 64, 2),
    NUM("listen", "upstream_threads", KEY_UINT, upstream_threads, 1, 16, 1),
    NUM("limits", "max_body_bytes", KEY_SIZE, max_body_bytes, 1, GIB, 16 * 1024 * 1024),
    NUM("limits", "max_connections", KEY_UINT, max_connections, 1, 1000000, 4096),
    NUM("limits", "max_stream_buffer_bytes", KEY_SIZE, max_stream_buffer, 1, GIB, 1024 * 1024),
    NUM("limits", "max_response_bytes", KEY_SIZE, max_response_bytes, 1, GIB,
        64 * 1024 * 1024),
    NUM("limits", "max_stop_token_ids", KEY_UINT, max_stop_token_ids, 1, 4096, 64),
    NUM("limits", "max_header_bytes", KEY_SIZE, max_header_bytes, 1024, 1024 * 1024, 4096),
    NUM("limits", "max_headers", KEY_UINT, max_headers, 1, 10000, 64),
    NUM("limits", "max_url_bytes", KEY_SIZE, max_url_bytes, 64, 1024 * 1024, 2048),
    NUM("limits", "max_json_depth", KEY_UINT, max_json_depth, 1, 2048, 128),
    NUM("limits", "max_connections_per_ip", KEY_UINT, max_connections_per_ip, 0, 1000000, 256),
    NUM("timeouts", "connect_ms", KEY_UINT, connect_timeout_ms, 1, DAY_MS, 3000),
    NUM("timeouts", "first_byte_ms", KEY_UINT, first_byte_timeout_ms, 1, DAY_MS, 600000),
    NUM("timeouts", "idle_stream_ms", KEY_UINT, idle_stream_timeout_ms, 1, DAY_MS, 300000),
    NUM("timeouts", "request_ms", KEY_UINT, request_timeout_ms, 1, DAY_MS, 60000),
    NUM("log", "level", KEY_LOG_LEVEL, log_level, 0, 3, 2),
    NUM("backends", "vram_budget_mb", KEY_UINT, vram_budget_mb, 0, 16777216, 0),
    NUM("backends", "ttl_s", KEY_UINT, ttl_s, 0, 31536000, 0),
    NUM("backends", "start_timeout_ms", KEY_UINT, start_timeout_ms, 1, DAY_MS, 120000),
    NUM("backends", "stop_grace_ms", KEY_UINT, stop_grace_ms, 0, 600000, 5000),
    NUM("backends", "queue_max", KEY_UINT, queue_max, 0, 100000, 64),
    NUM("backends", "swap_wait_ms", KEY_UINT, swap_wait_ms, 0, DAY_MS, 60000),
    NUM("backends", "restart_backoff_ms", KEY_UINT, backoff_ms, 1, DAY_MS, 1000),
    NUM("backends", "restart_backoff_max_ms", KEY_UINT, backoff_max_ms, 1, DAY_MS, 60000),
    NUM("backends", "health_interval_ms", KEY_UINT, health_interval_ms, 5, 60000, 50),
    NUM("backends", "loading_ping_ms", KEY_UINT, loading_ping_ms, 50, 600000, 3000),
    NUM("cors", "max_age_s", KEY_UINT, cors_max_age_s, 0, 86400, 600),
    {NULL, NULL, 0, 0, 0, 0, 0, NULL},
};

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

static void *field(gw_conf_t *c, const conf_key_t *k)
{
    return (char *)c + k->offset;
}

static void store_number(gw_conf_t *c, const conf_key_t *k, json_int_t v)
{
    switch (k->type) {
    case KEY_U16:
        *(uint16_t *)field(c, k) = (uint16_t)v;
        break;
    case KEY_UINT:
        *(unsigned *)field(c, k) = (unsigned)v;
        break;
    case KEY_SIZE:
        *(size_t *)field(c, k) = (size_t)v;
        break;
    case KEY_LOG_LEVEL:
        *(int *)field(c, k) = (int)v;
        break;
    case KEY_HOST:
        break;
    }
}

static void set_defaults(gw_conf_t *c)
{
    const conf_key_t *k;

    for (k = conf_keys; k->section; k++) {
        if (k->type == KEY_HOST)
            *(char **)field(c, k) = gw_xstrdup(k->sdef);
        else
            store_number(c, k, k->def);
    }
}

static int is_section(const char *name)
{
    const conf_key_t *k;

    for (k = conf_keys; k->section; k++)
        if (strcmp(k->section, name) == 0)
            return 1;
    return 0;
}

static const conf_key_t *find_key(const char *section, const char *name)
{
    const conf_key_t *k;

    for (k = conf_keys; k->section; k++)
        if (strcmp(k->section, section) == 0 && strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

/* ---------------------------------------------------------------------------------
 * Checks on strings
 * ------------------------------------------------------------------------------- */

static int is_ctl(unsigned char ch)
{
    return ch < 0x20 || ch == 0x7f;
}

static int is_space(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static int has_ctl(const char *s)
{
    for (; *s; s++)
        if (is_ctl((unsigned char)*s))
            return 1;
    return 0;
}

static int has_space_or_ctl(const char *s)
{
    for (; *s; s++)
        if (is_space((unsigned char)*s) || is_ctl((unsigned char)*s))
            return 1;
    return 0;
}

static int valid_model_name(const char *s)
{
    return *s != '\0' && strchr(s, '/') == NULL && !has_space_or_ctl(s);
}

/*
 * Formats s as a JSON string literal for a message (so that a name with control
 * characters cannot garble a log line), cut at QUOTE_MAX bytes. Caller frees.
 */
static char *quote(const char *s)
{
    gw_buf_t b;
    size_t n = strlen(s);
    char *q;

    gw_buf_init(&b, QUOTE_MAX * 6 + 8);
    gw_buf_add_json_str(&b, s, n > QUOTE_MAX ? QUOTE_MAX : n);
    if (n > QUOTE_MAX)
        gw_buf_adds(&b, "...");
    q = gw_buf_take(&b, NULL);
    return q ? q : gw_xstrdup("\"\"");
}

static int port_ok(const char *p, const char *end)
{
    long v = 0;

    if (p == end || end - p > 5)
        return 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
    }
    return v >= 1 && v <= 65535;
}

/*
 * An upstream base URL: http:// or https://, an authority with a host (a name, an
 * IPv4 address or a bracketed IPv6 address) and an optional port, then an optional
 * path. No whitespace, control characters, query or fragment: the gateway appends
 * "/v1/..." to it.
 */
static int valid_upstream(const char *u)
{
    const char *auth, *auth_end, *host, *p, *q;

    if (strncasecmp(u, "http://", 7) == 0)
        auth = u + 7;
    else if (strncasecmp(u, "https://", 8) == 0)
        auth = u + 8;
    else
        return 0;
    if (has_space_or_ctl(u) || strpbrk(u, "?#") != NULL)
        return 0;

    auth_end = auth + strcspn(auth, "/");
    host = auth;
    for (p = auth; p < auth_end; p++)
        if (*p == '@')
            host = p + 1;

    if (host < auth_end && *host == '[') {
        q = memchr(host, ']', (size_t)(auth_end - host));
        if (q == NULL || q == host + 1)
            return 0;
        p = q + 1;
    } else {
        p = memchr(host, ':', (size_t)(auth_end - host));
        if (p == NULL)
            p = auth_end;
        if (p == host)
            return 0;
    }
    if (p == auth_end)
        return 1;
    return *p == ':' && port_ok(p + 1, auth_end);
}

/* ---------------------------------------------------------------------------------
 * Sections
 * ------------------------------------------------------------------------------- */

static gw_err_t load_key(gw_conf_t *c, const conf_key_t *k, json_t *v, gw_errbuf_t *err)
{
    const char *s;
    json_int_t n;
    int i;

    switch (k->type) {
    case KEY_HOST:
        if (!json_is_string(v) || json_string_length(v) == 0)
            return gw_errf(err, GW_EPARAM, NULL, "%s.%s: expected a non-empty string",
                           k->section, k->name);
        s = json_string_value(v);
        if (has_space_or_ctl(s))
            return gw_errf(err, GW_EPARAM, NULL,
                           "%s.%s: must not contain whitespace or control characters",
                           k->section, k->name);
        free(*(char **)field(c, k));
        *(char **)field(c, k) = gw_xstrdup(s);
        return GW_OK;

    case KEY_LOG_LEVEL:
        s = json_is_string(v) ? json_string_value(v) : "";
        for (i = 0; log_levels[i]; i++) {
            if (strcmp(s, log_levels[i]) == 0) {
                store_number(c, k, i);
                return GW_OK;
            }
        }
        return gw_errf(err, GW_EPARAM, NULL, "%s.%s: expected one of error, warn, info, debug",
                       k->section, k->name);

    case KEY_U16:
    case KEY_UINT:
    case KEY_SIZE:
        n = json_integer_value(v); /* 0 when v is not an integer */
        if (!json_is_integer(v) || n < k->min || n > k->max)
            return gw_errf(err, GW_EPARAM, NULL,
                           "%s.%s: expected an integer from %" JSON_INTEGER_FORMAT
                           " to %" JSON_INTEGER_FORMAT,
                           k->section, k->name, k->min, k->max);
        store_number(c, k, n);
        return GW_OK;
    }
    return GW_EINTERNAL;
}

static gw_err_t load_preload_names(json_t *arr, json_t **names, gw_errbuf_t *err)
{
    size_t i;
    json_t *v;

    if (!json_is_array(arr))
        return gw_errf(err, GW_EPARAM, NULL, "backends.preload: expected an array of model names");
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0)
            return gw_errf(err, GW_EPARAM, NULL, "backends.preload[%zu]: expected a model name", i);
    }
    *names = json_incref(arr); /* resolved against the models at the end */
    return GW_OK;
}

static gw_err_t load_section(gw_conf_t *c, const char *section, json_t *obj, json_t **preload,
                             gw_errbuf_t *err)
{
    const conf_key_t *k;
    const char *name;
    json_t *v;
    gw_err_t rc;

    if (!json_is_object(obj))
        return gw_errf(err, GW_EPARAM, NULL, "%s: expected an object", section);
    json_object_foreach(obj, name, v) {
        if (strcmp(section, "backends") == 0 && strcmp(name, "preload") == 0) {
            rc = load_preload_names(v, preload, err);
            if (rc != GW_OK)
                return rc;
            continue;
        }
        k = find_key(section, name);
        if (k == NULL)
            return gw_errf(err, GW_EPARAM, NULL, "%s.%s: unknown key", section, name);
        rc = load_key(c, k, v, err);
        if (rc != GW_OK)
            return rc;
    }
    return GW_OK;
}

/* ---------------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------------- */

/*
 * Claims `name` for model `owner` in the shared namespace `seen` (name -> owner), or
 * fails naming the model that already has it. path is the key being checked.
 */
static gw_err_t claim(json_t *seen, const char *name, const char *owner, const char *path,
                      gw_errbuf_t *err)
{
    json_t *prev = json_object_get(seen, name);
    char *qn, *qo;

    if (prev == NULL) {
        json_object_set_new(seen, name, json_string(owner));
        return GW_OK;
    }
    qn = quote(name);
    qo = quote(json_string_value(prev));
    gw_errf(err, GW_EPARAM, NULL, "%s: %s is already used by model %s", path, qn, qo);
    free(qn);
    free(qo);
    return GW_EPARAM;
}

static gw_err_t load_aliases(gw_model_conf_t *m, json_t *arr, json_t *seen, gw_errbuf_t *err)
{
    char path[GW_ERRBUF_LEN];
    const char *s;
    size_t i;
    json_t *v;
    gw_err_t rc;

    if (!json_is_array(arr))
        return gw_errf(err, GW_EPARAM, NULL, "models.%s.aliases: expected an array of strings",
                       m->name);
    m->aliases = gw_xcalloc(json_array_size(arr), sizeof(*m->aliases));
    json_array_foreach(arr, i, v) {
        snprintf(path, sizeof(path), "models.%s.aliases[%zu]", m->name, i);
        if (!json_is_string(v) || json_string_length(v) == 0)
            return gw_errf(err, GW_EPARAM, NULL, "%s: expected a non-empty string", path);
        s = json_string_value(v);
        if (has_space_or_ctl(s))
            return gw_errf(err, GW_EPARAM, NULL,
                           "%s: must not contain whitespace or control characters", path);
        rc = claim(seen, s, m->name, path, err);
        if (rc != GW_OK)
            return rc;
        m->aliases[m->n_aliases++] = gw_xstrdup(s);
    }
    return GW_OK;
}

/* ---------------------------------------------------------------------------------
 * Spawned models: command templates, env, and the probe address
 * ------------------------------------------------------------------------------- */

#define TTL_UNSET UINT32_MAX /* a model's ttl_s until the backends default is known */

/*
 * Finds the next ${NAME} reference in s at or after *p. Returns 1 and sets *name,
 * *len (the NAME) and *p (past the '}'), 0 at the end, -1 for a "${" without '}'.
 */
static int next_var(const char **p, const char **name, size_t *len)
{
    const char *q = strstr(*p, "${"), *end;

    if (q == NULL)
        return 0;
    end = strchr(q + 2, '}');
    if (end == NULL)
        return -1;
    *name = q + 2;
    *len = (size_t)(end - q - 2);
    *p = end + 1;
    return 1;
}

static int var_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

/* Checks the ${...} references of a template at path; sets *uses_port for ${PORT}. */
static gw_err_t check_template(const char *s, const char *path, int *uses_port, gw_errbuf_t *err)
{
    const char *p = s, *name;
    size_t len;
    int rc;

    while ((rc = next_var(&p, &name, &len)) == 1) {
        if (var_is(name, len, "PORT")) {
            *uses_port = 1;
        } else if (!var_is(name, len, "MODEL")) {
            return gw_errf(err, GW_EPARAM, NULL,
                           "%s: unknown variable ${%.*s} (only ${PORT} and ${MODEL} expand)",
                           path, (int)(len > QUOTE_MAX ? QUOTE_MAX : len), name);
        }
    }
    if (rc < 0)
        return gw_errf(err, GW_EPARAM, NULL, "%s: \"${\" without a closing '}'", path);
    return GW_OK;
}

char *gw_conf_expand(const char *tmpl, const char *model, unsigned port)
{
    gw_buf_t b;
    const char *p = tmpl, *prev = tmpl, *name;
    size_t len;
    char *out;

    gw_buf_init(&b, CONF_MAX_FILE);
    while (next_var(&p, &name, &len) == 1) {
        gw_buf_add(&b, prev, (size_t)(name - 2 - prev));
        if (var_is(name, len, "PORT"))
            gw_buf_addf(&b, "%u", port);
        else if (var_is(name, len, "MODEL"))
            gw_buf_adds(&b, model);
        else
            gw_buf_add(&b, name - 2, len + 3);
        prev = p;
    }
    gw_buf_adds(&b, prev);
    out = gw_buf_take(&b, NULL);
    return out ? out : gw_xstrdup("");
}

int gw_conf_split_http_url(const char *url, char *host, size_t host_cap, unsigned *port,
                           const char **path)
{
    const char *h, *hend, *p;
    unsigned char addr[16];
    char tmp[64];
    long v = 0;
    int af = AF_INET;

    if (strncasecmp(url, "http://", 7) != 0)
        return -1;
    h = url + 7;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (hend == NULL)
            return -1;
        h++;
        p = hend + 1;
        af = AF_INET6;
    } else {
        hend = h + strcspn(h, ":/");
        p = hend;
    }
    if (*p != ':' || (size_t)(hend - h) >= sizeof(tmp))
        return -1;
    memcpy(tmp, h, (size_t)(hend - h));
    tmp[hend - h] = '\0';
    if (af == AF_INET && strcasecmp(tmp, "localhost") == 0)
        snprintf(tmp, sizeof(tmp), "127.0.0.1");
    if (inet_pton(af, tmp, addr) != 1)
        return -1;
    for (p++; *p >= '0' && *p <= '9' && v <= 65535; p++)
        v = v * 10 + (*p - '0');
    if (v < 1 || v > 65535 || (*p != '\0' && *p != '/'))
        return -1;
    if (host) {
        if (strlen(tmp) >= host_cap)
            return -1;
        memcpy(host, tmp, strlen(tmp) + 1);
    }
    if (port)
        *port = (unsigned)v;
    if (path)
        *path = p;
    return 0;
}

static gw_err_t load_command(gw_model_conf_t *m, json_t *arr, const char *mpath, gw_errbuf_t *err)
{
    char path[GW_ERRBUF_LEN + 64]; /* mpath is at most GW_ERRBUF_LEN */
    size_t i;
    json_t *v;
    gw_err_t rc;

    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return gw_errf(err, GW_EPARAM, NULL, "%s.command: expected a non-empty array of strings",
                       mpath);
    m->command = gw_xcalloc(json_array_size(arr), sizeof(*m->command));
    json_array_foreach(arr, i, v) {
        snprintf(path, sizeof(path), "%s.command[%zu]", mpath, i);
        if (!json_is_string(v))
            return gw_errf(err, GW_EPARAM, NULL, "%s: expected a string", path);
        if (i == 0 && json_string_length(v) == 0)
            return gw_errf(err, GW_EPARAM, NULL, "%s: expected the program to run", path);
        rc = check_template(json_string_value(v), path, &m->uses_port, err);
        if (rc != GW_OK)
            return rc;
        m->command[m->n_command++] = gw_xstrdup(json_string_value(v));
    }
    return GW_OK;
}

static int valid_env_name(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return 0;
    for (s++; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_' ||
              (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

static gw_err_t load_env(gw_model_conf_t *m, json_t *obj, const char *mpath, gw_errbuf_t *err)
{
    char path[GW_ERRBUF_LEN + 64]; /* mpath is at most GW_ERRBUF_LEN */
    const char *name;
    json_t *v;
    gw_err_t rc;
    char *q;

    if (!json_is_object(obj))
        return gw_errf(err, GW_EPARAM, NULL, "%s.env: expected an object of strings", mpath);
    m->env_names = gw_xcalloc(json_object_size(obj) + 1, sizeof(char *));
    m->env_values = gw_xcalloc(json_object_size(obj) + 1, sizeof(char *));
    json_object_foreach(obj, name, v) {
        if (!valid_env_name(name)) {
            q = quote(name);
            gw_errf(err, GW_EPARAM, NULL,
                    "%s.env: invalid variable name %s: expected letters, digits and '_', not "
                    "starting with a digit",
                    mpath, q);
            free(q);
            return GW_EPARAM;
        }
        snprintf(path, sizeof(path), "%s.env.%s", mpath, name);
        if (!json_is_string(v))
            return gw_errf(err, GW_EPARAM, NULL, "%s: expected a string", path);
        rc = check_template(json_string_value(v), path, &m->uses_port, err);
        if (rc != GW_OK)
            return rc;
        m->env_names[m->n_env] = gw_xstrdup(name);
        m->env_values[m->n_env++] = gw_xstrdup(json_string_value(v));
    }
    return GW_OK;
}

static gw_err_t load_model_uint(unsigned *dst, json_t *v, const char *path, const char *key,
                                json_int_t lo, json_int_t hi, gw_errbuf_t *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return gw_errf(err, GW_EPARAM, NULL,
                       "%s.%s: expected an integer from %" JSON_INTEGER_FORMAT
                       " to %" JSON_INTEGER_FORMAT,
                       path, key, lo, hi);
    *dst = (unsigned)json_integer_value(v);
    return GW_OK;
}

static gw_err_t load_model(gw_model_conf_t *m, const char *name, json_t *obj, json_t *seen,
                           gw_errbuf_t *err)
{
    char path[GW_ERRBUF_LEN];
    const char *key, *s, *spawn_key = NULL;
    json_t *v;
    size_t n;
    gw_err_t rc;
    char *q;

    if (!valid_model_name(name)) {
        q = quote(name);
        gw_errf(err, GW_EPARAM, NULL,
                "models: invalid model name %s: must be non-empty, without '/', whitespace "
                "or control characters",
                q);
        free(q);
        return GW_EPARAM;
    }
    m->name = gw_xstrdup(name);
    m->ttl_s = TTL_UNSET;
    snprintf(path, sizeof(path), "models.%s", name);
    if (!json_is_object(obj))
        return gw_errf(err, GW_EPARAM, NULL, "%s: expected an object", path);
    rc = claim(seen, name, name, path, err);
    if (rc != GW_OK)
        return rc;

    json_object_foreach(obj, key, v) {
        rc = GW_OK;
        if (strcmp(key, "upstream") == 0) {
            if (!json_is_string(v) || !valid_upstream(json_string_value(v)))
                return gw_errf(err, GW_EPARAM, NULL, "%s.upstream: expected an http(s) URL",
                               path);
            s = json_string_value(v);
            n = strlen(s);
            if (s[n - 1] == '/')
                n--;
            m->upstream = gw_xstrndup(s, n);
        } else if (strcmp(key, "aliases") == 0) {
            rc = load_aliases(m, v, seen, err);
        } else if (strcmp(key, "api_key") == 0) {
            if (!json_is_string(v) || json_string_length(v) == 0)
                return gw_errf(err, GW_EPARAM, NULL, "%s.api_key: expected a non-empty string",
                               path);
            if (has_ctl(json_string_value(v)))
                return gw_errf(err, GW_EPARAM, NULL,
                               "%s.api_key: must not contain control characters", path);
            m->api_key = gw_xstrdup(json_string_value(v));
        } else if (strcmp(key, "command") == 0) {
            rc = load_command(m, v, path, err);
        } else if (strcmp(key, "env") == 0) {
            rc = load_env(m, v, path, err);
            spawn_key = spawn_key ? spawn_key : "env";
        } else if (strcmp(key, "vram_mb") == 0) {
            rc = load_model_uint(&m->vram_mb, v, path, key, 0, 16777216, err);
            spawn_key = spawn_key ? spawn_key : "vram_mb";
        } else if (strcmp(key, "ttl_s") == 0) {
            rc = load_model_uint(&m->ttl_s, v, path, key, 0, 31536000, err);
            spawn_key = spawn_key ? spawn_key : "ttl_s";
        } else if (strcmp(key, "start_timeout_ms") == 0) {
            rc = load_model_uint(&m->start_timeout_ms, v, path, key, 1, DAY_MS, err);
            spawn_key = spawn_key ? spawn_key : "start_timeout_ms";
        } else {
            return gw_errf(err, GW_EPARAM, NULL, "%s.%s: unknown key", path, key);
        }
        if (rc != GW_OK)
            return rc;
    }
    if (m->n_command == 0) {
        if (spawn_key != NULL)
            return gw_errf(err, GW_EPARAM, NULL, "%s.%s: only valid with a command", path,
                           spawn_key);
        if (m->upstream == NULL)
            return gw_errf(err, GW_EPARAM, NULL, "%s.upstream: required key is missing", path);
    } else if (m->uses_port) {
        if (m->upstream != NULL)
            return gw_errf(err, GW_EPARAM, NULL,
                           "%s.upstream: must not be set when the command uses ${PORT} (the "
                           "backend is then http://127.0.0.1:PORT)",
                           path);
    } else {
        if (m->upstream == NULL)
            return gw_errf(err, GW_EPARAM, NULL,
                           "%s.upstream: required when the command does not use ${PORT}", path);
        if (gw_conf_split_http_url(m->upstream, NULL, 0, NULL, NULL) != 0)
            return gw_errf(err, GW_EPARAM, NULL,
                           "%s.upstream: with a command, expected http://IP:PORT (the health "
                           "check connects there)",
                           path);
    }
    return GW_OK;
}

static gw_err_t load_models(gw_conf_t *c, json_t *obj, gw_errbuf_t *err)
{
    json_t *seen = json_object(), *v;
    const char *name;
    gw_err_t rc = GW_EPARAM;

    if (!json_is_object(obj)) {
        gw_errf(err, GW_EPARAM, NULL, "models: expected an object");
        goto out;
    }
    if (json_object_size(obj) == 0) {
        gw_errf(err, GW_EPARAM, NULL, "models: expected at least one model");
        goto out;
    }
    c->models = gw_xcalloc(json_object_size(obj), sizeof(*c->models));
    json_object_foreach(obj, name, v) {
        /* Counted first, so that gw_conf_free frees a half-loaded model. */
        rc = load_model(&c->models[c->n_models++], name, v, seen, err);
        if (rc != GW_OK)
            goto out;
    }
    rc = GW_OK;
out:
    json_decref(seen);
    return rc;
}

/* ---------------------------------------------------------------------------------
 * Security: auth, tls, cors
 * ------------------------------------------------------------------------------- */

#define KEY_NAME_MAX 64

int gw_conf_key_name_ok(const char *s)
{
    size_t n = strlen(s);

    return n >= 1 && n <= KEY_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* 64 hex digits (either case) into 32 bytes; 0 if s is anything else. */
static int parse_sha256(const char *s, unsigned char out[32])
{
    size_t i;

    if (strlen(s) != 64)
        return 0;
    for (i = 0; i < 32; i++) {
        int hi = gw_text_hexval((unsigned char)s[2 * i]),
            lo = gw_text_hexval((unsigned char)s[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return 0;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 1;
}

static gw_err_t load_key_models(gw_key_conf_t *k, json_t *arr, const char *path,
                                gw_errbuf_t *err)
{
    size_t i;
    json_t *v;

    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return gw_errf(err, GW_EPARAM, NULL,
                       "%s.models: expected a non-empty array of model names", path);
    k->models = gw_xcalloc(json_array_size(arr), sizeof(*k->models));
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            has_space_or_ctl(json_string_value(v)))
            return gw_errf(err, GW_EPARAM, NULL, "%s.models[%zu]: expected a model name",
                           path, i);
        k->models[k->n_models++] = gw_xstrdup(json_string_value(v));
    }
    return GW_OK;
}

static gw_err_t load_one_key(gw_conf_t *c, gw_key_conf_t *k, const char *name, json_t *obj,
                             gw_errbuf_t *err)
{
    char path[GW_ERRBUF_LEN];
    const char *key;
    json_t *v;
    gw_err_t rc;
    int have_hash = 0;
    size_t i;
    char *q;

    if (!gw_conf_key_name_ok(name)) {
        q = quote(name);
        gw_errf(err, GW_EPARAM, NULL,
                "auth.keys: invalid key name %s: use 1 to %d letters, digits, '.', '_' or '-'",
                q, KEY_NAME_MAX);
        free(q);
        return GW_EPARAM;
    }
    k->name = gw_xstrdup(name);
    snprintf(path, sizeof(path), "auth.keys.%s", name);
    if (!json_is_object(obj))
        return gw_errf(err, GW_EPARAM, NULL, "%s: expected an object", path);
    json_object_foreach(obj, key, v) {
        if (strcmp(key, "sha256") == 0) {
            if (!json_is_string(v) || !parse_sha256(json_string_value(v), k->sha256))
                return gw_errf(err, GW_EPARAM, NULL,
                               "%s.sha256: expected 64 hex digits (llama-gateway keygen %s "
                               "prints them)",
                               path, name);
            have_hash = 1;
        } else if (strcmp(key, "models") == 0) {
            rc = load_key_models(k, v, path, err);
            if (rc != GW_OK)
                return rc;
        } else if (strcmp(key, "max_concurrent") == 0) {
            json_int_t n = json_integer_value(v);

            if (!json_is_integer(v) || n < 0 || n > 1000000)
                return gw_errf(err, GW_EPARAM, NULL,
                               "%s.max_concurrent: expected an integer from 0 to 1000000", path);
            k->max_concurrent = (unsigned)n;
        } else {
            return gw_errf(err, GW_EPARAM, NULL, "%s.%s: unknown key", path, key);
        }
    }
    if (!have_hash)
        return gw_errf(err, GW_EPARAM, NULL, "%s.sha256: required key is missing", path);
    /* k is the last loaded key: compare with the ones before it */
    for (i = 0; &c->keys[i] != k; i++) {
        if (memcmp(c->keys[i].sha256, k->sha256, sizeof(k->sha256)) == 0) {
            q = quote(c->keys[i].name);
            gw_errf(err, GW_EPARAM, NULL, "%s.sha256: the same key as %s", path, q);
            free(q);
            return GW_EPARAM;
        }
    }
    return GW_OK;
}

static gw_err_t load_keys(gw_conf_t *c, json_t *obj, gw_errbuf_t *err)
{
    const char *name;
    json_t *v;
    gw_err_t rc;

    if (!json_is_object(obj))
        return gw_errf(err, GW_EPARAM, NULL, "auth.keys: expected an object of name -> key");
    c->keys = gw_xcalloc(json_object_size(obj) ? json_object_size(obj) : 1, sizeof(*c->keys));
    json_object_foreach(obj, name, v) {
        /* Counted first, so that gw_conf_free frees a half-loaded key. */
        rc = load_one_key(c, &c->keys[c->n_keys++], name, v, err);
        if (rc != GW_OK)
            return rc;
    }
    return GW_OK;
}

static gw_err_t load_auth(gw_conf_t *c, json_t *obj, gw_errbuf_t *err)
{
    const char *key;
    json_t *v;
    gw_err_t rc;

    if (!json_is_object(obj))
        return gw_errf(err, GW_EPARAM, NULL, "auth: expected an object");
    json_object_foreach(obj, key, v) {
        if (strcmp(key, "keys") == 0) {
            rc = load_keys(c, v, err);
            if (rc != GW_OK)
                return rc;
        } else if (strcmp(key, "allow_unauthenticated") == 0) {
            if (!json_is_boolean(v))
                return gw_errf(err, GW_EPARAM, NULL,
                               "auth.allow_unauthenticated: expected true or false");
            c->allow_unauthenticated = json_is_true(v);
        } else {
            return gw_errf(err, GW_EPARAM, NULL, "auth.%s: unknown key", key);
        }
    }
    return GW_OK;
}

static gw_err_t load_tls(gw_conf_t *c, json_t *obj, gw_errbuf_t *err)
{
    const char *key;
    json_t *v;
    char **dst;

    if (!json_is_object(obj))
        return gw_errf(err, GW_EPARAM, NULL, "tls: expected an object");
    json_object_foreach(obj, key, v) {
        if (strcmp(key, "cert") == 0)
            dst = &c->tls_cert;
        else if (strcmp(key, "key") == 0)
            dst = &c->tls_key;
        else
            return gw_errf(err, GW_EPARAM, NULL, "tls.%s: unknown key", key);
        if (!json_is_string(v) || json_string_length(v) == 0 || has_ctl(json_string_value(v)))
            return gw_errf(err, GW_EPARAM, NULL, "tls.%s: expected the path of a PEM file", key);
        *dst = gw_xstrdup(json_string_value(v));
    }
    return GW_OK;
}

/*
 * An origin as browsers send it: scheme "://" host [":" port], nothing after, no
 * whitespace or control characters. "*" allows any origin.
 */
static int valid_origin(const char *o)
{
    const char *host;

    if (strcmp(o, "*") == 0)
        return 1;
    if (strncasecmp(o, "http://", 7) == 0)
        host = o + 7;
    else if (strncasecmp(o, "https://", 8) == 0)
        host = o + 8;
    else
        return 0;
    return *host != '\0' && *host != ':' && strpbrk(host, "/?#@") == NULL &&
           !has_space_or_ctl(o) && strlen(o) <= 255;
}

static gw_err_t load_cors(gw_conf_t *c, json_t *obj, gw_errbuf_t *err)
{
    const char *key;
    json_t *v, *o;
    size_t i;
    gw_err_t rc;

    if (!json_is_object(obj))
        return gw_errf(err, GW_EPARAM, NULL, "cors: expected an object");
    json_object_foreach(obj, key, v) {
        if (strcmp(key, "origins") != 0) {
            const conf_key_t *k = find_key("cors", key);

            if (k == NULL)
                return gw_errf(err, GW_EPARAM, NULL, "cors.%s: unknown key", key);
            rc = load_key(c, k, v, err);
            if (rc != GW_OK)
                return rc;
            continue;
        }
        if (!json_is_array(v))
            return gw_errf(err, GW_EPARAM, NULL, "cors.origins: expected an array of origins");
        c->cors_origins = gw_xcalloc(json_array_size(v) ? json_array_size(v) : 1,
                                     sizeof(*c->cors_origins));
        json_array_foreach(v, i, o) {
            if (!json_is_string(o) || !valid_origin(json_string_value(o)))
                return gw_errf(err, GW_EPARAM, NULL,
                               "cors.origins[%zu]: expected \"*\" or an origin such as "
                               "\"http://host:3000\" (scheme, host, optional port, no path)",
                               i);
            c->cors_origins[c->n_cors_origins++] = gw_xstrdup(json_string_value(o));
        }
    }
    return GW_OK;
}

static int is_model_name(const gw_conf_t *c, const char *name)
{
    size_t i, j;

    for (i = 0; i < c->n_models; i++) {
        if (strcmp(c->models[i].name, name) == 0)
            return 1;
        for (j = 0; j < c->models[i].n_aliases; j++)
            if (strcmp(c->models[i].aliases[j], name) == 0)
                return 1;
    }
    return 0;
}

int gw_conf_host_is_loopback(const char *host)
{
    unsigned char a[16];

    /* RFC 6761: "localhost" names loopback; any other name may resolve anywhere */
    if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
        return 1;
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1) {
        static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        size_t i;

        if (memcmp(a, v4mapped, 12) == 0)
            return a[12] == 127;
        for (i = 0; i < 15; i++)
            if (a[i] != 0)
                return 0;
        return a[15] == 1;
    }
    return 0;
}

/* The rules that span sections, checked once the whole file is loaded. */
static gw_err_t check_cross(const gw_conf_t *c, gw_errbuf_t *err)
{
    size_t i, j;
    char *q;

    for (i = 0; i < c->n_keys; i++) {
        for (j = 0; j < c->keys[i].n_models; j++) {
            if (is_model_name(c, c->keys[i].models[j]))
                continue;
            q = quote(c->keys[i].models[j]);
            gw_errf(err, GW_EPARAM, NULL,
                    "auth.keys.%s.models[%zu]: %s is not a configured model or alias",
                    c->keys[i].name, j, q);
            free(q);
            return GW_EPARAM;
        }
    }
    if ((c->tls_cert == NULL) != (c->tls_key == NULL))
        return gw_errf(err, GW_EPARAM, NULL, "tls: cert and key must be given together");
    if (c->n_keys == 0 && !c->allow_unauthenticated &&
        !gw_conf_host_is_loopback(c->listen_host)) {
        q = quote(c->listen_host);
        gw_errf(err, GW_EPARAM, NULL,
                "auth.keys: listen.host %s is not a loopback address and no API key is "
                "configured: add one (llama-gateway keygen NAME) or set "
                "auth.allow_unauthenticated to true",
                q);
        free(q);
        return GW_EPARAM;
    }
    return GW_OK;
}

/* ---------------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------------- */

/* Finds a model by name or alias; returns its index or -1. */
static long model_index(const gw_conf_t *c, const char *name)
{
    size_t i, j;

    for (i = 0; i < c->n_models; i++) {
        if (strcmp(c->models[i].name, name) == 0)
            return (long)i;
        for (j = 0; j < c->models[i].n_aliases; j++)
            if (strcmp(c->models[i].aliases[j], name) == 0)
                return (long)i;
    }
    return -1;
}

/* The checks between sections, once everything is loaded; then the defaults. */
static gw_err_t finish(gw_conf_t *c, json_t *preload, gw_errbuf_t *err)
{
    unsigned long long total = 0;
    size_t i, j;
    json_t *v;
    char *q;

    if (c->backoff_max_ms < c->backoff_ms)
        return gw_errf(err, GW_EPARAM, NULL,
                       "backends.restart_backoff_max_ms: must be at least "
                       "backends.restart_backoff_ms (%u)",
                       c->backoff_ms);
    for (i = 0; i < c->n_models; i++) {
        gw_model_conf_t *m = &c->models[i];

        if (c->vram_budget_mb > 0 && m->vram_mb > c->vram_budget_mb)
            return gw_errf(err, GW_EPARAM, NULL,
                           "models.%s.vram_mb: %u exceeds backends.vram_budget_mb (%u)", m->name,
                           m->vram_mb, c->vram_budget_mb);
        if (m->n_command == 0)
            continue;
        if (m->ttl_s == TTL_UNSET)
            m->ttl_s = c->ttl_s;
        if (m->start_timeout_ms == 0)
            m->start_timeout_ms = c->start_timeout_ms;
    }
    if (preload == NULL)
        return GW_OK;
    c->preload = gw_xcalloc(json_array_size(preload) + 1, sizeof(*c->preload));
    json_array_foreach(preload, i, v) {
        long k = model_index(c, json_string_value(v));

        q = quote(json_string_value(v));
        if (k < 0) {
            gw_errf(err, GW_EPARAM, NULL, "backends.preload[%zu]: unknown model %s", i, q);
        } else if (c->models[k].n_command == 0) {
            gw_errf(err, GW_EPARAM, NULL,
                    "backends.preload[%zu]: model %s has no command to start", i, q);
            k = -1;
        } else {
            for (j = 0; j < c->n_preload; j++) {
                if (c->preload[j] == (size_t)k) {
                    gw_errf(err, GW_EPARAM, NULL, "backends.preload[%zu]: %s is listed twice",
                            i, q);
                    k = -1;
                    break;
                }
            }
        }
        free(q);
        if (k < 0)
            return GW_EPARAM;
        c->preload[c->n_preload++] = (size_t)k;
        total += c->models[k].vram_mb;
    }
    if (c->vram_budget_mb > 0 && total > c->vram_budget_mb)
        return gw_errf(err, GW_EPARAM, NULL,
                       "backends.preload: the listed models need %llu MB of VRAM, more than "
                       "backends.vram_budget_mb (%u)",
                       total, c->vram_budget_mb);
    return GW_OK;
}

gw_err_t gw_conf_load_text(const char *text, size_t len, gw_conf_t **out, gw_errbuf_t *err)
{
    gw_err_t rc = GW_EPARAM;
    gw_conf_t *c = NULL;
    json_error_t jerr;
    json_t *root, *v, *preload = NULL;
    const char *key;

    root = json_loadb(text ? text : "", text ? len : 0, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        rc = gw_errf(err, GW_EBADJSON, NULL, "line %d column %d: %s", jerr.line, jerr.column,
                     jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        gw_errf(err, GW_EPARAM, NULL, "top level: expected an object");
        goto out;
    }

    c = gw_xcalloc(1, sizeof(*c));
    set_defaults(c);
    json_object_foreach(root, key, v) {
        if (strcmp(key, "models") == 0)
            rc = load_models(c, v, err);
        else if (strcmp(key, "auth") == 0)
            rc = load_auth(c, v, err);
        else if (strcmp(key, "tls") == 0)
            rc = load_tls(c, v, err);
        else if (strcmp(key, "cors") == 0)
            rc = load_cors(c, v, err);
        else if (is_section(key))
            rc = load_section(c, key, v, &preload, err);
        else
            rc = gw_errf(err, GW_EPARAM, NULL, "%s: unknown key", key);
        if (rc != GW_OK)
            goto out;
    }
    if (json_object_get(root, "models") == NULL) {
        rc = gw_errf(err, GW_EPARAM, NULL, "models: required key is missing");
        goto out;
    }
    rc = finish(c, preload, err);
    if (rc == GW_OK)
        rc = check_cross(c, err);

out:
    json_decref(preload);
    json_decref(root);
    if (rc != GW_OK) {
        gw_conf_free(c);
        c = NULL;
    }
    *out = c;
    return rc;
}

gw_err_t gw_conf_load_file(const char *path, gw_conf_t **out, gw_errbuf_t *err)
{
    gw_err_t rc;
    gw_buf_t text;
    int err_no;

    *out = NULL;
    gw_buf_init(&text, CONF_MAX_FILE);
    rc = gw_buf_read_file(&text, path, &err_no);
    if (rc == GW_EINTERNAL)
        gw_errf(err, rc, NULL, "%s: %s", path, strerror(err_no));
    else if (rc == GW_ETOOBIG)
        gw_errf(err, rc, NULL, "%s: larger than %u MiB", path, CONF_MAX_FILE / (1024 * 1024));
    else
        rc = gw_conf_load_text(text.ptr, text.len, out, err);
    gw_buf_free(&text);
    return rc;
}

void gw_conf_free(gw_conf_t *c)
{
    size_t i, j;

    if (c == NULL)
        return;
    for (i = 0; i < c->n_models; i++) {
        gw_model_conf_t *m = &c->models[i];

        free(m->name);
        free(m->upstream);
        for (j = 0; j < m->n_aliases; j++)
            free(m->aliases[j]);
        free(m->aliases);
        free(m->api_key);
        for (j = 0; j < m->n_command; j++)
            free(m->command[j]);
        free(m->command);
        for (j = 0; j < m->n_env; j++) {
            free(m->env_names[j]);
            free(m->env_values[j]);
        }
        free(m->env_names);
        free(m->env_values);
    }
    free(c->preload);
    free(c->models);
    for (i = 0; i < c->n_keys; i++) {
        for (j = 0; j < c->keys[i].n_models; j++)
            free(c->keys[i].models[j]);
        free(c->keys[i].models);
        free(c->keys[i].name);
    }
    free(c->keys);
    for (i = 0; i < c->n_cors_origins; i++)
        free(c->cors_origins[i]);
    free(c->cors_origins);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->listen_host);
    free(c);
}
