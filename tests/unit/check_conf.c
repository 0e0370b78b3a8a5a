/*
 * check_conf.c - unit tests for the configuration loader (conf/conf.c).
 *
 * Defaults from a minimal file; a full file with every key; the accepted edge of every
 * range; models, aliases and upstream URLs; then a table of bad configs, each with the
 * exact message and code it must produce; then gw_conf_load_file on real, missing,
 * unreadable and oversized files. Run under ASan (CK_FORK=no) this also shows that no
 * path, failing or not, leaks.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"

/* Two SHA-256 values in hex (any 64 hex digits will do for the loader). */
#define HASH_A "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27a0f"
#define HASH_B "beefbeefbeefbeefbeefbeefbeefbeefbeefbeefbeefbeefbeefbeefbeefbeef"
#define HASH_B_UPPER "BEEFBEEFBEEFBEEFBEEFBEEFBEEFBEEFBEEFBEEFBEEFBEEFBEEFBEEFBEEFBEEF"

/* JSON builders for the tables. */
#define MODELS "\"models\":{\"q\":{\"upstream\":\"http://h\"}}"
#define MODELS_ONLY "{" MODELS "}"
#define WITH(x) "{" MODELS "," x "}"
#define MODEL(body) "{\"models\":{\"q\":" body "}}"
#define UP(url) MODEL("{\"upstream\":\"" url "\"}")
#define ALIASES(list) MODEL("{\"upstream\":\"http://h\",\"aliases\":" list "}")
#define CMD(list) MODEL("{\"command\":" list "}")
#define SPAWN(extra) MODEL("{\"command\":[\"x\",\"${PORT}\"]" extra "}")
/* a fixed model q and a spawned model s (vram 500) */
#define TWO(backends)                                                                        \
    "{\"models\":{\"q\":{\"upstream\":\"http://h\"},"                                        \
    "\"s\":{\"command\":[\"x\",\"${PORT}\"],\"vram_mb\":500,\"aliases\":[\"s2\"]}},"        \
    "\"backends\":" backends "}"

static gw_conf_t *load_ok(const char *json)
{
    gw_conf_t *c = (gw_conf_t *)1;
    gw_errbuf_t err = {{0}, {0}};
    gw_err_t rc = gw_conf_load_text(json, strlen(json), &c, &err);

    ck_assert_msg(rc == GW_OK, "%s\n  -> %s: %s", json, gw_err_name(rc), err.msg);
    ck_assert_ptr_nonnull(c);
    return c;
}

START_TEST(test_defaults)
{
    gw_conf_t *c = load_ok("{\"models\": {\"qwen\": {\"upstream\": \"http://127.0.0.1:8081\"}}}");

    ck_assert_str_eq(c->listen_host, "127.0.0.1");
    ck_assert_uint_eq(c->listen_port, 8000);
    ck_assert_uint_eq(c->threads, 2);
    ck_assert_uint_eq(c->max_body_bytes, 16u * 1024 * 1024);
    ck_assert_uint_eq(c->max_connections, 4096);
    ck_assert_uint_eq(c->max_stream_buffer, 1024 * 1024);
    ck_assert_uint_eq(c->max_response_bytes, 64u * 1024 * 1024);
    ck_assert_uint_eq(c->connect_timeout_ms, 3000);
    ck_assert_uint_eq(c->first_byte_timeout_ms, 600000);
    ck_assert_uint_eq(c->idle_stream_timeout_ms, 300000);
    ck_assert_uint_eq(c->request_timeout_ms, 60000);
    ck_assert_int_eq(c->log_level, 2);
    ck_assert_uint_eq(c->max_header_bytes, 4096);
    ck_assert_uint_eq(c->max_headers, 64);
    ck_assert_uint_eq(c->max_url_bytes, 2048);
    ck_assert_uint_eq(c->max_json_depth, 128);
    ck_assert_uint_eq(c->max_connections_per_ip, 256);
    /* security: nothing configured, nothing allowed */
    ck_assert_uint_eq(c->n_keys, 0);
    ck_assert_ptr_null(c->keys);
    ck_assert_int_eq(c->allow_unauthenticated, 0);
    ck_assert_ptr_null(c->tls_cert);
    ck_assert_ptr_null(c->tls_key);
    ck_assert_uint_eq(c->n_cors_origins, 0);
    ck_assert_uint_eq(c->cors_max_age_s, 600);
    ck_assert_uint_eq(c->n_models, 1);
    ck_assert_str_eq(c->models[0].name, "qwen");
    ck_assert_str_eq(c->models[0].upstream, "http://127.0.0.1:8081");
    ck_assert_uint_eq(c->models[0].n_aliases, 0);
    ck_assert_ptr_null(c->models[0].api_key);
    gw_conf_free(c);
}
END_TEST

/* Empty sections are allowed and change nothing. */
START_TEST(test_empty_sections)
{
    gw_conf_t *c = load_ok(WITH("\"listen\":{},\"limits\":{},\"timeouts\":{},\"log\":{}"));

    ck_assert_uint_eq(c->listen_port, 8000);
    ck_assert_int_eq(c->log_level, 2);
    gw_conf_free(c);
}
END_TEST

START_TEST(test_full)
{
    static const char json[] =
        "{\n"
        "  \"listen\":   {\"host\": \"0.0.0.0\", \"port\": 9000, \"threads\": 8},\n"
        "  \"limits\":   {\"max_body_bytes\": 1000, \"max_connections\": 10,\n"
        "                \"max_stream_buffer_bytes\": 2000, \"max_response_bytes\": 3000},\n"
        "  \"timeouts\": {\"connect_ms\": 1, \"first_byte_ms\": 2, \"idle_stream_ms\": 3,\n"
        "                \"request_ms\": 4},\n"
        "  \"log\":      {\"level\": \"debug\"},\n"
        "  \"auth\":     {\"keys\": {\"laptop\": {\"sha256\": \"" HASH_A "\"},\n"
        "                          \"web.ui_2\": {\"sha256\": \"" HASH_B_UPPER "\",\n"
        "                                       \"models\": [\"gpt-4o-mini\", \"llama\"],\n"
        "                                       \"max_concurrent\": 3}},\n"
        "                \"allow_unauthenticated\": false},\n"
        "  \"tls\":      {\"cert\": \"/etc/gw/cert.pem\", \"key\": \"/etc/gw/key.pem\"},\n"
        "  \"cors\":     {\"origins\": [\"http://webui.lan:3000\", \"https://x.example\"],\n"
        "                \"max_age_s\": 60},\n"
        "  \"models\": {\n"
        "    \"qwen\": {\"upstream\": \"http://127.0.0.1:8081/\", \"aliases\": [\"gpt-4o-mini\", "
        "\"Qwen/Qwen2.5-0.5B\"],\n"
        "             \"api_key\": \"secret for the backend\"},\n"
        "    \"llama\": {\"upstream\": \"https://llama.internal/base/\"},\n"
        "    \"tiny\": {\"aliases\": [], \"upstream\": \"http://[::1]:8082\"}\n"
        "  }\n"
        "}\n";
    gw_conf_t *c = load_ok(json);

    ck_assert_str_eq(c->listen_host, "0.0.0.0");
    ck_assert_uint_eq(c->listen_port, 9000);
    ck_assert_uint_eq(c->threads, 8);
    ck_assert_uint_eq(c->max_body_bytes, 1000);
    ck_assert_uint_eq(c->max_connections, 10);
    ck_assert_uint_eq(c->max_stream_buffer, 2000);
    ck_assert_uint_eq(c->max_response_bytes, 3000);
    ck_assert_uint_eq(c->connect_timeout_ms, 1);
    ck_assert_uint_eq(c->first_byte_timeout_ms, 2);
    ck_assert_uint_eq(c->idle_stream_timeout_ms, 3);
    ck_assert_uint_eq(c->request_timeout_ms, 4);
    ck_assert_int_eq(c->log_level, 3);

    /* Models in file order, aliases in array order. */
    ck_assert_uint_eq(c->n_models, 3);
    ck_assert_str_eq(c->models[0].name, "qwen");
    ck_assert_str_eq(c->models[0].upstream, "http://127.0.0.1:8081");
    ck_assert_uint_eq(c->models[0].n_aliases, 2);
    ck_assert_str_eq(c->models[0].aliases[0], "gpt-4o-mini");
    ck_assert_str_eq(c->models[0].aliases[1], "Qwen/Qwen2.5-0.5B");
    ck_assert_str_eq(c->models[0].api_key, "secret for the backend");
    ck_assert_str_eq(c->models[1].name, "llama");
    ck_assert_str_eq(c->models[1].upstream, "https://llama.internal/base");
    ck_assert_uint_eq(c->models[1].n_aliases, 0);
    ck_assert_ptr_null(c->models[1].api_key);
    ck_assert_str_eq(c->models[2].name, "tiny");
    ck_assert_str_eq(c->models[2].upstream, "http://[::1]:8082");
    ck_assert_uint_eq(c->models[2].n_aliases, 0);

    /* Keys in file order; the hash is stored as bytes, from either case of hex. */
    ck_assert_uint_eq(c->n_keys, 2);
    ck_assert_str_eq(c->keys[0].name, "laptop");
    ck_assert_uint_eq(c->keys[0].sha256[0], 0xa6);
    ck_assert_uint_eq(c->keys[0].sha256[31], 0x0f);
    ck_assert_ptr_null(c->keys[0].models);
    ck_assert_uint_eq(c->keys[0].max_concurrent, 0);
    ck_assert_str_eq(c->keys[1].name, "web.ui_2");
    ck_assert_uint_eq(c->keys[1].sha256[0], 0xbe);
    ck_assert_uint_eq(c->keys[1].sha256[31], 0xef);
    ck_assert_uint_eq(c->keys[1].n_models, 2);
    ck_assert_str_eq(c->keys[1].models[0], "gpt-4o-mini");
    ck_assert_str_eq(c->keys[1].models[1], "llama");
    ck_assert_uint_eq(c->keys[1].max_concurrent, 3);
    ck_assert_int_eq(c->allow_unauthenticated, 0);
    ck_assert_str_eq(c->tls_cert, "/etc/gw/cert.pem");
    ck_assert_str_eq(c->tls_key, "/etc/gw/key.pem");
    ck_assert_uint_eq(c->n_cors_origins, 2);
    ck_assert_str_eq(c->cors_origins[0], "http://webui.lan:3000");
    ck_assert_str_eq(c->cors_origins[1], "https://x.example");
    ck_assert_uint_eq(c->cors_max_age_s, 60);
    gw_conf_free(c);
}
END_TEST

/* The accepted ends of every range. */
START_TEST(test_range_edges)
{
    gw_conf_t *c;

    c = load_ok(WITH("\"listen\":{\"port\":0,\"threads\":1},"
                     "\"limits\":{\"max_body_bytes\":1,\"max_connections\":1,"
                     "\"max_stream_buffer_bytes\":1,\"max_response_bytes\":1},"
                     "\"timeouts\":{\"connect_ms\":1,\"first_byte_ms\":1,\"idle_stream_ms\":1,"
                     "\"request_ms\":1}"));
    ck_assert_uint_eq(c->listen_port, 0);
    ck_assert_uint_eq(c->threads, 1);
    ck_assert_uint_eq(c->max_body_bytes, 1);
    ck_assert_uint_eq(c->request_timeout_ms, 1);
    gw_conf_free(c);

    c = load_ok(WITH("\"listen\":{\"port\":65535,\"threads\":64},"
                     "\"limits\":{\"max_body_bytes\":1073741824,\"max_connections\":1000000,"
                     "\"max_stream_buffer_bytes\":1073741824,"
                     "\"max_response_bytes\":1073741824},"
                     "\"timeouts\":{\"connect_ms\":86400000,\"first_byte_ms\":86400000,"
                     "\"idle_stream_ms\":86400000,\"request_ms\":86400000}"));
    ck_assert_uint_eq(c->listen_port, 65535);
    ck_assert_uint_eq(c->threads, 64);
    ck_assert_uint_eq(c->max_body_bytes, 1073741824);
    ck_assert_uint_eq(c->max_connections, 1000000);
    ck_assert_uint_eq(c->max_stream_buffer, 1073741824);
    ck_assert_uint_eq(c->max_response_bytes, 1073741824);
    ck_assert_uint_eq(c->connect_timeout_ms, 86400000);
    ck_assert_uint_eq(c->first_byte_timeout_ms, 86400000);
    ck_assert_uint_eq(c->idle_stream_timeout_ms, 86400000);
    ck_assert_uint_eq(c->request_timeout_ms, 86400000);
    gw_conf_free(c);
}
END_TEST

START_TEST(test_log_levels)
{
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    char json[256];
    int i;

    for (i = 0; i < 4; i++) {
        gw_conf_t *c;

        snprintf(json, sizeof(json), WITH("\"log\":{\"level\":\"%s\"}"), levels[i]);
        c = load_ok(json);
        ck_assert_int_eq(c->log_level, i);
        gw_conf_free(c);
    }
}
END_TEST

/* Accepted upstream URLs and what is stored: exactly one trailing '/' is dropped. */
START_TEST(test_upstream_accepted)
{
    static const struct {
        const char *in, *stored;
    } rows[] = {
        {"http://h", "http://h"},
        {"http://h/", "http://h"},
        {"http://h//", "http://h/"},
        {"http://h:1/v1/", "http://h:1/v1"},
        {"https://example.com:65535/a/b", "https://example.com:65535/a/b"},
        {"HTTP://H", "HTTP://H"},
        {"http://10.0.0.1:8081", "http://10.0.0.1:8081"},
        {"http://[::1]", "http://[::1]"},
        {"http://[fe80::1%25eth0]:80/", "http://[fe80::1%25eth0]:80"},
        {"http://user:pw@h:8080", "http://user:pw@h:8080"},
    };
    char json[256];
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        gw_conf_t *c;

        snprintf(json, sizeof(json), UP("%s"), rows[i].in);
        c = load_ok(json);
        ck_assert_str_eq(c->models[0].upstream, rows[i].stored);
        gw_conf_free(c);
    }
}
END_TEST

/* Names and aliases share one namespace, across models. */
START_TEST(test_aliases_namespace)
{
    gw_conf_t *c = load_ok("{\"models\":{"
                           "\"a\":{\"upstream\":\"http://h\",\"aliases\":[\"x\",\"y\"]},"
                           "\"b\":{\"upstream\":\"http://h\",\"aliases\":[\"z\"]}}}");

    ck_assert_uint_eq(c->n_models, 2);
    ck_assert_uint_eq(c->models[0].n_aliases, 2);
    ck_assert_str_eq(c->models[0].aliases[1], "y");
    ck_assert_uint_eq(c->models[1].n_aliases, 1);
    ck_assert_str_eq(c->models[1].aliases[0], "z");
    gw_conf_free(c);
}
END_TEST

/* Model names and aliases may be any UTF-8 without the forbidden characters. */
START_TEST(test_names_utf8)
{
    gw_conf_t *c = load_ok("{\"models\":{\"qw\xC3\xA9n-2.5_b:1\":{\"upstream\":\"http://h\","
                           "\"aliases\":[\"org/m\xC3\xB6" "del\"]}}}");

    ck_assert_str_eq(c->models[0].name, "qw\xC3\xA9n-2.5_b:1");
    ck_assert_str_eq(c->models[0].aliases[0], "org/m\xC3\xB6" "del");
    gw_conf_free(c);
}
END_TEST

/* Spawned models: what is stored, the defaults from `backends`, preload by name or alias. */
START_TEST(test_spawned)
{
    static const char json[] =
        "{\"backends\": {\"vram_budget_mb\": 16000, \"ttl_s\": 600, \"preload\": [\"g4\", "
        "\"fixed-port\"],\n"
        "              \"start_timeout_ms\": 90000, \"stop_grace_ms\": 0, \"queue_max\": 0,\n"
        "              \"swap_wait_ms\": 0, \"restart_backoff_ms\": 500,\n"
        "              \"restart_backoff_max_ms\": 500, \"health_interval_ms\": 5,\n"
        "              \"loading_ping_ms\": 50},\n"
        " \"models\": {\n"
        "  \"gemma3-4b\": {\"aliases\": [\"g4\"], \"vram_mb\": 3400, \"ttl_s\": 0,\n"
        "                \"command\": [\"llama-server\", \"-m\", \"/m/${MODEL}.gguf\",\n"
        "                            \"--port\",\n"
        "                            \"${PORT}\", \"--api-key\", \"\"],\n"
        "                \"env\": {\"HIP_VISIBLE_DEVICES\": \"1\", \"_X9\": \"$5\"}},\n"
        "  \"fixed-port\": {\"command\": [\"/bin/srv\", \"--port\", \"8081\"],\n"
        "                 \"upstream\": \"http://localhost:8081/\", \"start_timeout_ms\": 5},\n"
        "  \"env-port\": {\"command\": [\"srv\"], \"env\": {\"LLAMA_ARG_PORT\": \"${PORT}\"}},\n"
        "  \"remote\": {\"upstream\": \"http://10.0.0.2:8080\"}\n"
        " }}";
    gw_conf_t *c = load_ok(json);
    const gw_model_conf_t *m;

    ck_assert_uint_eq(c->vram_budget_mb, 16000);
    ck_assert_uint_eq(c->ttl_s, 600);
    ck_assert_uint_eq(c->start_timeout_ms, 90000);
    ck_assert_uint_eq(c->stop_grace_ms, 0);
    ck_assert_uint_eq(c->queue_max, 0);
    ck_assert_uint_eq(c->swap_wait_ms, 0);
    ck_assert_uint_eq(c->backoff_ms, 500);
    ck_assert_uint_eq(c->backoff_max_ms, 500);
    ck_assert_uint_eq(c->health_interval_ms, 5);
    ck_assert_uint_eq(c->loading_ping_ms, 50);
    ck_assert_uint_eq(c->n_preload, 2);
    ck_assert_uint_eq(c->preload[0], 0); /* by alias */
    ck_assert_uint_eq(c->preload[1], 1);

    m = &c->models[0];
    ck_assert_uint_eq(m->n_command, 7);
    ck_assert_str_eq(m->command[2], "/m/${MODEL}.gguf");
    ck_assert_str_eq(m->command[6], "");
    ck_assert_int_eq(m->uses_port, 1);
    ck_assert_ptr_null(m->upstream);
    ck_assert_uint_eq(m->n_env, 2);
    ck_assert_str_eq(m->env_names[0], "HIP_VISIBLE_DEVICES");
    ck_assert_str_eq(m->env_values[0], "1");
    ck_assert_str_eq(m->env_names[1], "_X9");
    ck_assert_str_eq(m->env_values[1], "$5");
    ck_assert_uint_eq(m->vram_mb, 3400);
    ck_assert_uint_eq(m->ttl_s, 0);               /* its own: never */
    ck_assert_uint_eq(m->start_timeout_ms, 90000); /* the default */

    m = &c->models[1];
    ck_assert_int_eq(m->uses_port, 0);
    ck_assert_str_eq(m->upstream, "http://localhost:8081");
    ck_assert_uint_eq(m->ttl_s, 600); /* the default */
    ck_assert_uint_eq(m->start_timeout_ms, 5);
    ck_assert_uint_eq(m->vram_mb, 0);

    m = &c->models[2];
    ck_assert_int_eq(m->uses_port, 1); /* ${PORT} in env counts */
    ck_assert_ptr_null(m->upstream);

    m = &c->models[3];
    ck_assert_uint_eq(m->n_command, 0);
    ck_assert_ptr_null(m->command);
    ck_assert_uint_eq(m->n_env, 0);
    gw_conf_free(c);

    /* the backends defaults */
    c = load_ok(MODELS_ONLY);
    ck_assert_uint_eq(c->vram_budget_mb, 0);
    ck_assert_uint_eq(c->ttl_s, 0);
    ck_assert_uint_eq(c->start_timeout_ms, 120000);
    ck_assert_uint_eq(c->stop_grace_ms, 5000);
    ck_assert_uint_eq(c->queue_max, 64);
    ck_assert_uint_eq(c->swap_wait_ms, 60000);
    ck_assert_uint_eq(c->backoff_ms, 1000);
    ck_assert_uint_eq(c->backoff_max_ms, 60000);
    ck_assert_uint_eq(c->health_interval_ms, 50);
    ck_assert_uint_eq(c->loading_ping_ms, 3000);
    ck_assert_uint_eq(c->n_preload, 0);
    gw_conf_free(c);
}
END_TEST

/* A non-loopback address is fine with keys or with allow_unauthenticated. */
START_TEST(test_exposed_host_needs_keys_or_flag)
{
    gw_conf_t *c;

    c = load_ok(WITH("\"listen\":{\"host\":\"0.0.0.0\"},"
                     "\"auth\":{\"keys\":{\"k\":{\"sha256\":\"" HASH_A "\"}}}"));
    ck_assert_uint_eq(c->n_keys, 1);
    gw_conf_free(c);
    c = load_ok(WITH("\"listen\":{\"host\":\"::\"},\"auth\":{\"allow_unauthenticated\":true}"));
    ck_assert_int_eq(c->allow_unauthenticated, 1);
    ck_assert_uint_eq(c->n_keys, 0);
    gw_conf_free(c);
    /* loopback addresses need nothing */
    c = load_ok(WITH("\"listen\":{\"host\":\"127.1.2.3\"}"));
    gw_conf_free(c);
    c = load_ok(WITH("\"listen\":{\"host\":\"::1\"},\"auth\":{\"keys\":{}}"));
    ck_assert_uint_eq(c->n_keys, 0);
    gw_conf_free(c);
}
END_TEST

/* ${PORT} and ${MODEL} expand; anything else is copied as it is. */
START_TEST(test_expand)
{
    static const struct {
        const char *in, *out;
    } rows[] = {
        {"", ""},
        {"--port", "--port"},
        {"${PORT}", "8081"},
        {"--port=${PORT}", "--port=8081"},
        {"/models/${MODEL}.gguf", "/models/qwen 2.5.gguf"},
        {"${MODEL}:${PORT}:${MODEL}", "qwen 2.5:8081:qwen 2.5"},
        {"$PORT $ {PORT} $${PORT}", "$PORT $ {PORT} $8081"},
        {"${FOO}${PORT}", "${FOO}8081"},
        {"${}", "${}"},
        {"${PORT", "${PORT"},
        {"}${PORT}{", "}8081{"},
    };
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char *got = gw_conf_expand(rows[i].in, "qwen 2.5", 8081);

        ck_assert_msg(strcmp(got, rows[i].out) == 0, "%s -> %s, want %s", rows[i].in, got,
                      rows[i].out);
        free(got);
    }
}
END_TEST

START_TEST(test_split_http_url)
{
    static const struct {
        const char *url;
        int rc;
        const char *host;
        unsigned port;
        const char *path;
    } rows[] = {
        {"http://127.0.0.1:8081", 0, "127.0.0.1", 8081, ""},
        {"HTTP://127.0.0.1:1/base/", 0, "127.0.0.1", 1, "/base/"},
        {"http://localhost:65535", 0, "127.0.0.1", 65535, ""},
        {"http://[::1]:80/x", 0, "::1", 80, "/x"},
        {"http://127.0.0.1", -1, NULL, 0, NULL},
        {"http://127.0.0.1:", -1, NULL, 0, NULL},
        {"http://127.0.0.1:0", -1, NULL, 0, NULL},
        {"http://127.0.0.1:65536", -1, NULL, 0, NULL},
        {"http://127.0.0.1:80x", -1, NULL, 0, NULL},
        {"http://host:80", -1, NULL, 0, NULL},
        {"http://[::1:80", -1, NULL, 0, NULL},
        {"https://127.0.0.1:443", -1, NULL, 0, NULL},
    };
    size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char host[64] = "";
        unsigned port = 0;
        const char *path = NULL;
        int rc = gw_conf_split_http_url(rows[i].url, host, sizeof(host), &port, &path);

        ck_assert_msg(rc == rows[i].rc, "%s: rc %d", rows[i].url, rc);
        if (rc != 0)
            continue;
        ck_assert_str_eq(host, rows[i].host);
        ck_assert_uint_eq(port, rows[i].port);
        ck_assert_str_eq(path, rows[i].path);
    }
}
END_TEST

START_TEST(test_loopback)
{
    ck_assert_int_eq(gw_conf_host_is_loopback("127.0.0.1"), 1);
    ck_assert_int_eq(gw_conf_host_is_loopback("127.255.255.254"), 1);
    ck_assert_int_eq(gw_conf_host_is_loopback("::1"), 1);
    ck_assert_int_eq(gw_conf_host_is_loopback("::ffff:127.0.0.1"), 1);
    ck_assert_int_eq(gw_conf_host_is_loopback("0.0.0.0"), 0);
    ck_assert_int_eq(gw_conf_host_is_loopback("::"), 0);
    ck_assert_int_eq(gw_conf_host_is_loopback("128.0.0.1"), 0);
    ck_assert_int_eq(gw_conf_host_is_loopback("192.168.1.10"), 0);
    ck_assert_int_eq(gw_conf_host_is_loopback("::2"), 0);
    ck_assert_int_eq(gw_conf_host_is_loopback("::ffff:10.0.0.1"), 0);
    ck_assert_int_eq(gw_conf_host_is_loopback("localhost"), 1);
    ck_assert_int_eq(gw_conf_host_is_loopback("LocalHost."), 1);
    ck_assert_int_eq(gw_conf_host_is_loopback("localhost.example"), 0);
    ck_assert_int_eq(gw_conf_host_is_loopback("gpu-box.lan"), 0); /* a name may resolve anywhere */
    ck_assert_int_eq(gw_conf_host_is_loopback(""), 0);
}
END_TEST

START_TEST(test_key_names)
{
    ck_assert_int_eq(gw_conf_key_name_ok("a"), 1);
    ck_assert_int_eq(gw_conf_key_name_ok("team-A.b_9"), 1);
    ck_assert_int_eq(gw_conf_key_name_ok(
                         "0123456789012345678901234567890123456789012345678901234567890123"),
                     1);
    ck_assert_int_eq(gw_conf_key_name_ok(
                         "01234567890123456789012345678901234567890123456789012345678901234"),
                     0);
    ck_assert_int_eq(gw_conf_key_name_ok(""), 0);
    ck_assert_int_eq(gw_conf_key_name_ok("a b"), 0);
    ck_assert_int_eq(gw_conf_key_name_ok("a\nb"), 0);
    ck_assert_int_eq(gw_conf_key_name_ok("a/b"), 0);
    ck_assert_int_eq(gw_conf_key_name_ok("caf\xc3\xa9"), 0);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Bad configs: exact message and code
 * ------------------------------------------------------------------------------- */

typedef struct bad_row {
    const char *json;
    gw_err_t rc;
    const char *msg;
} bad_row_t;

#define URL_MSG "models.q.upstream: expected an http(s) URL"
#define NAME_MSG(q)                                                                         \
    "models: invalid model name " q ": must be non-empty, without '/', whitespace or "      \
    "control characters"
#define PORT_MSG "listen.port: expected an integer from 0 to 65535"
#define THREADS_MSG "listen.threads: expected an integer from 1 to 64"
#define LEVEL_MSG "log.level: expected one of error, warn, info, debug"
#define VAR_MSG(path, name) path ": unknown variable ${" name "} (only ${PORT} and ${MODEL} expand)"
#define PROBE_MSG                                                                           \
    "models.q.upstream: with a command, expected http://IP:PORT (the health check connects "  \
    "there)"
#define ENV_NAME_MSG(q)                                                                     \
    "models.q.env: invalid variable name " q ": expected letters, digits and '_', not "       \
    "starting with a digit"
#define KEY(name, body) WITH("\"auth\":{\"keys\":{\"" name "\":" body "}}")
#define HASH_MSG(name)                                                                     \
    "auth.keys." name ".sha256: expected 64 hex digits (llama-gateway keygen " name          \
    " prints them)"
#define ORIGIN_MSG(i)                                                                      \
    "cors.origins[" #i "]: expected \"*\" or an origin such as \"http://host:3000\" "       \
    "(scheme, host, optional port, no path)"
#define EXPOSED_MSG(q)                                                                     \
    "auth.keys: listen.host " q " is not a loopback address and no API key is "              \
    "configured: add one (llama-gateway keygen NAME) or set auth.allow_unauthenticated "     \
    "to true"

static const bad_row_t bad_rows[] = {
    /* JSON syntax: jansson's text with its position. */
    {"", GW_EBADJSON, "line 1 column 0: '[' or '{' expected near end of file"},
    {"{\"models\": {\"q\": {\"upstream\": \"http://h\"}},}", GW_EBADJSON,
     "line 1 column 44: string or '}' expected near '}'"},
    {"{\n  \"listen\": {\"port\": 1, \"port\": 2}\n}", GW_EBADJSON,
     "line 2 column 30: duplicate object key near '\"port\"'"},
    {"{\"models\": {\"q\": {}, \"q\": {}}}", GW_EBADJSON,
     "line 1 column 24: duplicate object key near '\"q\"'"},
    {"{\"listen\": {\"port\": 99999999999999999999}}", GW_EBADJSON,
     "line 1 column 40: too big integer near '99999999999999999999'"},
    {"{} {}", GW_EBADJSON, "line 1 column 4: end of file expected near '{'"},
    {"{\"a\": \"\\u0000\"}", GW_EBADJSON,
     "line 1 column 14: \\u0000 is not allowed without JSON_ALLOW_NUL near '\"\\u0000\"'"},

    /* Top level. */
    {"[]", GW_EPARAM, "top level: expected an object"},
    {"{}", GW_EPARAM, "models: required key is missing"},
    {"{\"listen\": {}}", GW_EPARAM, "models: required key is missing"},
    {WITH("\"foo\": 1"), GW_EPARAM, "foo: unknown key"},
    {WITH("\"Listen\": {}"), GW_EPARAM, "Listen: unknown key"},
    /* The first problem in file order is the one reported. */
    {"{\"listen\": {\"port\": -1}, \"foo\": 1}", GW_EPARAM, PORT_MSG},
    {"{\"foo\": 1, \"listen\": {\"port\": -1}}", GW_EPARAM, "foo: unknown key"},

    /* Sections. */
    {WITH("\"listen\": 1"), GW_EPARAM, "listen: expected an object"},
    {WITH("\"limits\": []"), GW_EPARAM, "limits: expected an object"},
    {WITH("\"timeouts\": null"), GW_EPARAM, "timeouts: expected an object"},
    {WITH("\"log\": \"info\""), GW_EPARAM, "log: expected an object"},
    {WITH("\"listen\": {\"hots\": \"x\"}"), GW_EPARAM, "listen.hots: unknown key"},
    {WITH("\"limits\": {\"max_bodybytes\": 1}"), GW_EPARAM, "limits.max_bodybytes: unknown key"},
    {WITH("\"timeouts\": {\"connect\": 1}"), GW_EPARAM, "timeouts.connect: unknown key"},
    {WITH("\"log\": {\"format\": \"json\"}"), GW_EPARAM, "log.format: unknown key"},

    /* listen */
    {WITH("\"listen\": {\"host\": \"\"}"), GW_EPARAM, "listen.host: expected a non-empty string"},
    {WITH("\"listen\": {\"host\": 127}"), GW_EPARAM, "listen.host: expected a non-empty string"},
    {WITH("\"listen\": {\"host\": \"local host\"}"), GW_EPARAM,
     "listen.host: must not contain whitespace or control characters"},
    {WITH("\"listen\": {\"host\": \"h\\n\"}"), GW_EPARAM,
     "listen.host: must not contain whitespace or control characters"},
    {WITH("\"listen\": {\"port\": -1}"), GW_EPARAM, PORT_MSG},
    {WITH("\"listen\": {\"port\": 65536}"), GW_EPARAM, PORT_MSG},
    {WITH("\"listen\": {\"port\": \"8000\"}"), GW_EPARAM, PORT_MSG},
    {WITH("\"listen\": {\"port\": 8000.0}"), GW_EPARAM, PORT_MSG},
    {WITH("\"listen\": {\"port\": true}"), GW_EPARAM, PORT_MSG},
    {WITH("\"listen\": {\"port\": null}"), GW_EPARAM, PORT_MSG},
    {WITH("\"listen\": {\"threads\": 0}"), GW_EPARAM, THREADS_MSG},
    {WITH("\"listen\": {\"threads\": 65}"), GW_EPARAM, THREADS_MSG},

    /* limits */
    {WITH("\"limits\": {\"max_body_bytes\": 0}"), GW_EPARAM,
     "limits.max_body_bytes: expected an integer from 1 to 1073741824"},
    {WITH("\"limits\": {\"max_body_bytes\": 1073741825}"), GW_EPARAM,
     "limits.max_body_bytes: expected an integer from 1 to 1073741824"},
    {WITH("\"limits\": {\"max_connections\": 0}"), GW_EPARAM,
     "limits.max_connections: expected an integer from 1 to 1000000"},
    {WITH("\"limits\": {\"max_connections\": 1000001}"), GW_EPARAM,
     "limits.max_connections: expected an integer from 1 to 1000000"},
    {WITH("\"limits\": {\"max_stream_buffer_bytes\": -5}"), GW_EPARAM,
     "limits.max_stream_buffer_bytes: expected an integer from 1 to 1073741824"},
    {WITH("\"limits\": {\"max_response_bytes\": 9223372036854775807}"), GW_EPARAM,
     "limits.max_response_bytes: expected an integer from 1 to 1073741824"},

    /* timeouts */
    {WITH("\"timeouts\": {\"connect_ms\": 0}"), GW_EPARAM,
     "timeouts.connect_ms: expected an integer from 1 to 86400000"},
    {WITH("\"timeouts\": {\"first_byte_ms\": 86400001}"), GW_EPARAM,
     "timeouts.first_byte_ms: expected an integer from 1 to 86400000"},
    {WITH("\"timeouts\": {\"idle_stream_ms\": 1.5}"), GW_EPARAM,
     "timeouts.idle_stream_ms: expected an integer from 1 to 86400000"},
    {WITH("\"timeouts\": {\"request_ms\": -1}"), GW_EPARAM,
     "timeouts.request_ms: expected an integer from 1 to 86400000"},

    /* log */
    {WITH("\"log\": {\"level\": \"verbose\"}"), GW_EPARAM, LEVEL_MSG},
    {WITH("\"log\": {\"level\": \"INFO\"}"), GW_EPARAM, LEVEL_MSG},
    {WITH("\"log\": {\"level\": 2}"), GW_EPARAM, LEVEL_MSG},
    {WITH("\"log\": {\"level\": \"\"}"), GW_EPARAM, LEVEL_MSG},

    /* models */
    {"{\"models\": []}", GW_EPARAM, "models: expected an object"},
    {"{\"models\": {}}", GW_EPARAM, "models: expected at least one model"},
    {"{\"models\": {\"q\": \"http://h\"}}", GW_EPARAM, "models.q: expected an object"},
    {"{\"models\": {\"q\": {}}}", GW_EPARAM, "models.q.upstream: required key is missing"},
    {MODEL("{\"aliases\": [\"a\"]}"), GW_EPARAM, "models.q.upstream: required key is missing"},
    {MODEL("{\"upstream\": \"http://h\", \"Upstream\": 1}"), GW_EPARAM,
     "models.q.Upstream: unknown key"},
    {"{\"models\": {\"\": {\"upstream\": \"http://h\"}}}", GW_EPARAM, NAME_MSG("\"\"")},
    {"{\"models\": {\"a/b\": {\"upstream\": \"http://h\"}}}", GW_EPARAM, NAME_MSG("\"a/b\"")},
    {"{\"models\": {\"a b\": {\"upstream\": \"http://h\"}}}", GW_EPARAM, NAME_MSG("\"a b\"")},
    {"{\"models\": {\"a\\tb\": {\"upstream\": \"http://h\"}}}", GW_EPARAM,
     NAME_MSG("\"a\\tb\"")},
    {"{\"models\": {\"a\\u007f\": {\"upstream\": \"http://h\"}}}", GW_EPARAM,
     NAME_MSG("\"a\x7f\"")},
    {"{\"models\": {\"ok\": {\"upstream\": \"http://h\"}, \"\\u001b[31m\": {}}}", GW_EPARAM,
     NAME_MSG("\"\\u001b[31m\"")},

    /* upstream */
    {UP(""), GW_EPARAM, URL_MSG},
    {MODEL("{\"upstream\": 8081}"), GW_EPARAM, URL_MSG},
    {MODEL("{\"upstream\": null}"), GW_EPARAM, URL_MSG},
    {UP("127.0.0.1:8081"), GW_EPARAM, URL_MSG},
    {UP("ftp://h"), GW_EPARAM, URL_MSG},
    {UP("http:/h"), GW_EPARAM, URL_MSG},
    {UP("http://"), GW_EPARAM, URL_MSG},
    {UP("http:///v1"), GW_EPARAM, URL_MSG},
    {UP("http://:8080"), GW_EPARAM, URL_MSG},
    {UP("http://h:"), GW_EPARAM, URL_MSG},
    {UP("http://h:0"), GW_EPARAM, URL_MSG},
    {UP("http://h:65536"), GW_EPARAM, URL_MSG},
    {UP("http://h:123456"), GW_EPARAM, URL_MSG},
    {UP("http://h:8o"), GW_EPARAM, URL_MSG},
    {UP("http://h x"), GW_EPARAM, URL_MSG},
    {UP("http://h/\\n"), GW_EPARAM, URL_MSG},
    {UP("http://h?x=1"), GW_EPARAM, URL_MSG},
    {UP("http://h/#f"), GW_EPARAM, URL_MSG},
    {UP("http://[]"), GW_EPARAM, URL_MSG},
    {UP("http://[::1"), GW_EPARAM, URL_MSG},
    {UP("http://[::1]x"), GW_EPARAM, URL_MSG},
    {UP("http://user@"), GW_EPARAM, URL_MSG},

    /* aliases */
    {ALIASES("\"gpt\""), GW_EPARAM, "models.q.aliases: expected an array of strings"},
    {ALIASES("{}"), GW_EPARAM, "models.q.aliases: expected an array of strings"},
    {ALIASES("[\"ok\", \"\"]"), GW_EPARAM, "models.q.aliases[1]: expected a non-empty string"},
    {ALIASES("[\"ok\", 3]"), GW_EPARAM, "models.q.aliases[1]: expected a non-empty string"},
    {ALIASES("[null]"), GW_EPARAM, "models.q.aliases[0]: expected a non-empty string"},
    {ALIASES("[\"gpt 4\"]"), GW_EPARAM,
     "models.q.aliases[0]: must not contain whitespace or control characters"},
    {ALIASES("[\"a\", \"b\\r\\n\"]"), GW_EPARAM,
     "models.q.aliases[1]: must not contain whitespace or control characters"},

    /* One namespace for names and aliases. */
    {"{\"models\": {\"other\": {\"upstream\": \"http://h\", \"aliases\": [\"gpt\"]},"
     " \"qwen\": {\"upstream\": \"http://h\", \"aliases\": [\"gpt\"]}}}",
     GW_EPARAM, "models.qwen.aliases[0]: \"gpt\" is already used by model \"other\""},
    {"{\"models\": {\"other\": {\"upstream\": \"http://h\", \"aliases\": [\"gpt\"]},"
     " \"gpt\": {\"upstream\": \"http://h\"}}}",
     GW_EPARAM, "models.gpt: \"gpt\" is already used by model \"other\""},
    {"{\"models\": {\"qwen\": {\"upstream\": \"http://h\", \"aliases\": [\"other\"]},"
     " \"other\": {\"upstream\": \"http://h\"}}}",
     GW_EPARAM, "models.other: \"other\" is already used by model \"qwen\""},
    {"{\"models\": {\"a\": {\"upstream\": \"http://h\"},"
     " \"qwen\": {\"upstream\": \"http://h\", \"aliases\": [\"x\", \"a\"]}}}",
     GW_EPARAM, "models.qwen.aliases[1]: \"a\" is already used by model \"a\""},
    {ALIASES("[\"q\"]"), GW_EPARAM, "models.q.aliases[0]: \"q\" is already used by model \"q\""},
    {ALIASES("[\"x\", \"y\", \"x\"]"), GW_EPARAM,
     "models.q.aliases[2]: \"x\" is already used by model \"q\""},

    /* api_key */
    {MODEL("{\"upstream\": \"http://h\", \"api_key\": 5}"), GW_EPARAM,
     "models.q.api_key: expected a non-empty string"},
    {MODEL("{\"upstream\": \"http://h\", \"api_key\": \"\"}"), GW_EPARAM,
     "models.q.api_key: expected a non-empty string"},
    {MODEL("{\"upstream\": \"http://h\", \"api_key\": \"k\\r\\nX-Evil: 1\"}"), GW_EPARAM,
     "models.q.api_key: must not contain control characters"},

    /* command */
    {CMD("[]"), GW_EPARAM, "models.q.command: expected a non-empty array of strings"},
    {CMD("\"llama-server --port 8081\""), GW_EPARAM,
     "models.q.command: expected a non-empty array of strings"},
    {CMD("[\"\"]"), GW_EPARAM, "models.q.command[0]: expected the program to run"},
    {CMD("[\"x\", 8081]"), GW_EPARAM, "models.q.command[1]: expected a string"},
    {CMD("[\"x\", \"${FOO}\"]"), GW_EPARAM, VAR_MSG("models.q.command[1]", "FOO")},
    {CMD("[\"x\", \"--port=${port}\"]"), GW_EPARAM, VAR_MSG("models.q.command[1]", "port")},
    {CMD("[\"x\", \"${}\"]"), GW_EPARAM, VAR_MSG("models.q.command[1]", "")},
    {CMD("[\"x\", \"${PORT\"]"), GW_EPARAM,
     "models.q.command[1]: \"${\" without a closing '}'"},
    {CMD("[\"${MODEL}\"]"), GW_EPARAM,
     "models.q.upstream: required when the command does not use ${PORT}"},
    {MODEL("{\"command\": [\"x\", \"${PORT}\"], \"upstream\": \"http://127.0.0.1:1\"}"),
     GW_EPARAM,
     "models.q.upstream: must not be set when the command uses ${PORT} (the backend is then "
     "http://127.0.0.1:PORT)"},
    {MODEL("{\"command\": [\"x\"], \"upstream\": \"http://h:8081\"}"), GW_EPARAM, PROBE_MSG},
    {MODEL("{\"command\": [\"x\"], \"upstream\": \"https://127.0.0.1:8081\"}"), GW_EPARAM,
     PROBE_MSG},
    {MODEL("{\"command\": [\"x\"], \"upstream\": \"http://127.0.0.1\"}"), GW_EPARAM, PROBE_MSG},
    {MODEL("{\"command\": [\"x\"], \"upstream\": \"http://[::1]\"}"), GW_EPARAM, PROBE_MSG},

    /* env, vram_mb, ttl_s, start_timeout_ms */
    {SPAWN(",\"env\": [\"A=1\"]"), GW_EPARAM, "models.q.env: expected an object of strings"},
    {SPAWN(",\"env\": {\"1A\": \"x\"}"), GW_EPARAM, ENV_NAME_MSG("\"1A\"")},
    {SPAWN(",\"env\": {\"A=B\": \"x\"}"), GW_EPARAM, ENV_NAME_MSG("\"A=B\"")},
    {SPAWN(",\"env\": {\"\": \"x\"}"), GW_EPARAM, ENV_NAME_MSG("\"\"")},
    {SPAWN(",\"env\": {\"A\": 1}"), GW_EPARAM, "models.q.env.A: expected a string"},
    {SPAWN(",\"env\": {\"A\": \"${HOME}\"}"), GW_EPARAM, VAR_MSG("models.q.env.A", "HOME")},
    {SPAWN(",\"vram_mb\": -1"), GW_EPARAM,
     "models.q.vram_mb: expected an integer from 0 to 16777216"},
    {SPAWN(",\"vram_mb\": 3.4"), GW_EPARAM,
     "models.q.vram_mb: expected an integer from 0 to 16777216"},
    {SPAWN(",\"ttl_s\": \"600\""), GW_EPARAM,
     "models.q.ttl_s: expected an integer from 0 to 31536000"},
    {SPAWN(",\"start_timeout_ms\": 0"), GW_EPARAM,
     "models.q.start_timeout_ms: expected an integer from 1 to 86400000"},
    {MODEL("{\"upstream\": \"http://h\", \"vram_mb\": 1}"), GW_EPARAM,
     "models.q.vram_mb: only valid with a command"},
    {MODEL("{\"upstream\": \"http://h\", \"ttl_s\": 1, \"env\": {}}"), GW_EPARAM,
     "models.q.ttl_s: only valid with a command"},

    /* backends */
    {WITH("\"backends\": 1"), GW_EPARAM, "backends: expected an object"},
    {WITH("\"backends\": {\"vram\": 1}"), GW_EPARAM, "backends.vram: unknown key"},
    {WITH("\"backends\": {\"vram_budget_mb\": -1}"), GW_EPARAM,
     "backends.vram_budget_mb: expected an integer from 0 to 16777216"},
    {WITH("\"backends\": {\"ttl_s\": 31536001}"), GW_EPARAM,
     "backends.ttl_s: expected an integer from 0 to 31536000"},
    {WITH("\"backends\": {\"start_timeout_ms\": 0}"), GW_EPARAM,
     "backends.start_timeout_ms: expected an integer from 1 to 86400000"},
    {WITH("\"backends\": {\"stop_grace_ms\": 600001}"), GW_EPARAM,
     "backends.stop_grace_ms: expected an integer from 0 to 600000"},
    {WITH("\"backends\": {\"queue_max\": -1}"), GW_EPARAM,
     "backends.queue_max: expected an integer from 0 to 100000"},
    {WITH("\"backends\": {\"swap_wait_ms\": null}"), GW_EPARAM,
     "backends.swap_wait_ms: expected an integer from 0 to 86400000"},
    {WITH("\"backends\": {\"restart_backoff_ms\": 0}"), GW_EPARAM,
     "backends.restart_backoff_ms: expected an integer from 1 to 86400000"},
    {WITH("\"backends\": {\"health_interval_ms\": 4}"), GW_EPARAM,
     "backends.health_interval_ms: expected an integer from 5 to 60000"},
    {WITH("\"backends\": {\"loading_ping_ms\": 49}"), GW_EPARAM,
     "backends.loading_ping_ms: expected an integer from 50 to 600000"},
    {WITH("\"backends\": {\"restart_backoff_ms\": 1000, \"restart_backoff_max_ms\": 999}"),
     GW_EPARAM,
     "backends.restart_backoff_max_ms: must be at least backends.restart_backoff_ms (1000)"},
    {TWO("{\"vram_budget_mb\": 499}"), GW_EPARAM,
     "models.s.vram_mb: 500 exceeds backends.vram_budget_mb (499)"},
    {TWO("{\"preload\": \"s\"}"), GW_EPARAM,
     "backends.preload: expected an array of model names"},
    {TWO("{\"preload\": [\"s\", 1]}"), GW_EPARAM, "backends.preload[1]: expected a model name"},
    {TWO("{\"preload\": [\"\"]}"), GW_EPARAM, "backends.preload[0]: expected a model name"},
    {TWO("{\"preload\": [\"nope\"]}"), GW_EPARAM, "backends.preload[0]: unknown model \"nope\""},
    {TWO("{\"preload\": [\"q\"]}"), GW_EPARAM,
     "backends.preload[0]: model \"q\" has no command to start"},
    {TWO("{\"preload\": [\"s\", \"s2\"]}"), GW_EPARAM,
     "backends.preload[1]: \"s2\" is listed twice"},
    {"{\"models\":{\"a\":{\"command\":[\"x\",\"${PORT}\"],\"vram_mb\":600},"
     "\"b\":{\"command\":[\"x\",\"${PORT}\"],\"vram_mb\":600}},"
     "\"backends\":{\"vram_budget_mb\":1000,\"preload\":[\"a\",\"b\"]}}",
     GW_EPARAM,
     "backends.preload: the listed models need 1200 MB of VRAM, more than "
     "backends.vram_budget_mb (1000)"},
    /* new limits */
    {WITH("\"limits\": {\"max_header_bytes\": 1023}"), GW_EPARAM,
     "limits.max_header_bytes: expected an integer from 1024 to 1048576"},
    {WITH("\"limits\": {\"max_headers\": 0}"), GW_EPARAM,
     "limits.max_headers: expected an integer from 1 to 10000"},
    {WITH("\"limits\": {\"max_url_bytes\": 63}"), GW_EPARAM,
     "limits.max_url_bytes: expected an integer from 64 to 1048576"},
    {WITH("\"limits\": {\"max_json_depth\": 2049}"), GW_EPARAM,
     "limits.max_json_depth: expected an integer from 1 to 2048"},
    {WITH("\"limits\": {\"max_connections_per_ip\": -1}"), GW_EPARAM,
     "limits.max_connections_per_ip: expected an integer from 0 to 1000000"},

    /* auth */
    {WITH("\"auth\": []"), GW_EPARAM, "auth: expected an object"},
    {WITH("\"auth\": {\"key\": {}}"), GW_EPARAM, "auth.key: unknown key"},
    {WITH("\"auth\": {\"keys\": []}"), GW_EPARAM,
     "auth.keys: expected an object of name -> key"},
    {WITH("\"auth\": {\"allow_unauthenticated\": 1}"), GW_EPARAM,
     "auth.allow_unauthenticated: expected true or false"},
    {WITH("\"auth\": {\"allow_unauthenticated\": \"yes\"}"), GW_EPARAM,
     "auth.allow_unauthenticated: expected true or false"},
    {KEY("", "{\"sha256\": \"" HASH_A "\"}"), GW_EPARAM,
     "auth.keys: invalid key name \"\": use 1 to 64 letters, digits, '.', '_' or '-'"},
    {KEY("a b", "{\"sha256\": \"" HASH_A "\"}"), GW_EPARAM,
     "auth.keys: invalid key name \"a b\": use 1 to 64 letters, digits, '.', '_' or '-'"},
    {KEY("a\\nb", "{\"sha256\": \"" HASH_A "\"}"), GW_EPARAM,
     "auth.keys: invalid key name \"a\\nb\": use 1 to 64 letters, digits, '.', '_' or '-'"},
    {KEY("k", "\"" HASH_A "\""), GW_EPARAM, "auth.keys.k: expected an object"},
    {KEY("k", "{}"), GW_EPARAM, "auth.keys.k.sha256: required key is missing"},
    {KEY("k", "{\"models\": [\"q\"]}"), GW_EPARAM,
     "auth.keys.k.sha256: required key is missing"},
    {KEY("k", "{\"sha256\": 5}"), GW_EPARAM, HASH_MSG("k")},
    {KEY("k", "{\"sha256\": \"sk-gw-plaintext-key\"}"), GW_EPARAM, HASH_MSG("k")},
    {KEY("k", "{\"sha256\": \"" HASH_A "0\"}"), GW_EPARAM, HASH_MSG("k")},
    {KEY("k", "{\"sha256\": \"a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27a0\"}"),
     GW_EPARAM, HASH_MSG("k")},
    {KEY("k", "{\"sha256\": \"g665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27a0f\"}"),
     GW_EPARAM, HASH_MSG("k")},
    {KEY("k", "{\"sha256\": \"" HASH_A "\", \"name\": \"x\"}"), GW_EPARAM,
     "auth.keys.k.name: unknown key"},
    {KEY("k", "{\"sha256\": \"" HASH_A "\", \"models\": []}"), GW_EPARAM,
     "auth.keys.k.models: expected a non-empty array of model names"},
    {KEY("k", "{\"sha256\": \"" HASH_A "\", \"models\": \"q\"}"), GW_EPARAM,
     "auth.keys.k.models: expected a non-empty array of model names"},
    {KEY("k", "{\"sha256\": \"" HASH_A "\", \"models\": [\"q\", 1]}"), GW_EPARAM,
     "auth.keys.k.models[1]: expected a model name"},
    {KEY("k", "{\"sha256\": \"" HASH_A "\", \"models\": [\"q\", \"nope\"]}"), GW_EPARAM,
     "auth.keys.k.models[1]: \"nope\" is not a configured model or alias"},
    {KEY("k", "{\"sha256\": \"" HASH_A "\", \"max_concurrent\": -1}"), GW_EPARAM,
     "auth.keys.k.max_concurrent: expected an integer from 0 to 1000000"},
    {KEY("k", "{\"sha256\": \"" HASH_A "\", \"max_concurrent\": 1.5}"), GW_EPARAM,
     "auth.keys.k.max_concurrent: expected an integer from 0 to 1000000"},
    /* one key, two names: which name would the logs show? */
    {WITH("\"auth\":{\"keys\":{\"a\":{\"sha256\":\"" HASH_B "\"},"
          "\"b\":{\"sha256\":\"" HASH_B_UPPER "\"}}}"),
     GW_EPARAM, "auth.keys.b.sha256: the same key as \"a\""},
    /* the safe default */
    {WITH("\"listen\": {\"host\": \"0.0.0.0\"}"), GW_EPARAM, EXPOSED_MSG("\"0.0.0.0\"")},
    {WITH("\"listen\": {\"host\": \"192.168.1.5\"}, \"auth\": {\"keys\": {}}"), GW_EPARAM,
     EXPOSED_MSG("\"192.168.1.5\"")},
    {WITH("\"listen\": {\"host\": \"::\"}, \"auth\": {\"allow_unauthenticated\": false}"),
     GW_EPARAM, EXPOSED_MSG("\"::\"")},
    /* a per-key error comes before the cross-section rules */
    {WITH("\"listen\": {\"host\": \"0.0.0.0\"}, \"auth\": {\"keys\": {\"k\": {}}}"),
     GW_EPARAM, "auth.keys.k.sha256: required key is missing"},

    /* tls */
    {WITH("\"tls\": \"on\""), GW_EPARAM, "tls: expected an object"},
    {WITH("\"tls\": {\"cert\": \"\", \"key\": \"k\"}"), GW_EPARAM,
     "tls.cert: expected the path of a PEM file"},
    {WITH("\"tls\": {\"cert\": \"c\", \"key\": 1}"), GW_EPARAM,
     "tls.key: expected the path of a PEM file"},
    {WITH("\"tls\": {\"cert\": \"c\\n\", \"key\": \"k\"}"), GW_EPARAM,
     "tls.cert: expected the path of a PEM file"},
    {WITH("\"tls\": {\"cert\": \"c\", \"ca\": \"x\"}"), GW_EPARAM, "tls.ca: unknown key"},
    {WITH("\"tls\": {\"cert\": \"c\"}"), GW_EPARAM, "tls: cert and key must be given together"},
    {WITH("\"tls\": {\"key\": \"k\"}"), GW_EPARAM, "tls: cert and key must be given together"},

    /* cors */
    {WITH("\"cors\": []"), GW_EPARAM, "cors: expected an object"},
    {WITH("\"cors\": {\"origin\": []}"), GW_EPARAM, "cors.origin: unknown key"},
    {WITH("\"cors\": {\"origins\": \"*\"}"), GW_EPARAM,
     "cors.origins: expected an array of origins"},
    {WITH("\"cors\": {\"origins\": [1]}"), GW_EPARAM, ORIGIN_MSG(0)},
    {WITH("\"cors\": {\"origins\": [\"*\", \"\"]}"), GW_EPARAM, ORIGIN_MSG(1)},
    {WITH("\"cors\": {\"origins\": [\"webui.lan\"]}"), GW_EPARAM, ORIGIN_MSG(0)},
    {WITH("\"cors\": {\"origins\": [\"http://webui.lan/\"]}"), GW_EPARAM, ORIGIN_MSG(0)},
    {WITH("\"cors\": {\"origins\": [\"http://\"]}"), GW_EPARAM, ORIGIN_MSG(0)},
    {WITH("\"cors\": {\"origins\": [\"ftp://x\"]}"), GW_EPARAM, ORIGIN_MSG(0)},
    {WITH("\"cors\": {\"origins\": [\"http://a b\"]}"), GW_EPARAM, ORIGIN_MSG(0)},
    {WITH("\"cors\": {\"origins\": [\"http://u@h\"]}"), GW_EPARAM, ORIGIN_MSG(0)},
    {WITH("\"cors\": {\"max_age_s\": 86401}"), GW_EPARAM,
     "cors.max_age_s: expected an integer from 0 to 86400"},
};

#define N_BAD ((int)(sizeof(bad_rows) / sizeof(bad_rows[0])))

START_TEST(test_bad)
{
    const bad_row_t *row = &bad_rows[_i];
    gw_conf_t *c = (gw_conf_t *)1;
    gw_errbuf_t err;
    gw_err_t rc;

    memset(&err, 0, sizeof(err));
    rc = gw_conf_load_text(row->json, strlen(row->json), &c, &err);
    ck_assert_msg(rc == row->rc, "%s\n  -> %s (%s), want %s", row->json, gw_err_name(rc),
                  err.msg, gw_err_name(row->rc));
    ck_assert_ptr_null(c);
    ck_assert_msg(strcmp(err.msg, row->msg) == 0, "%s\n  got:  %s\n  want: %s", row->json,
                  err.msg, row->msg);
    ck_assert_str_eq(err.param, "");
}
END_TEST

/* A failure without an errbuf still returns the code and frees everything. */
START_TEST(test_bad_without_errbuf)
{
    static const char json[] = "{\"models\":{\"a\":{\"upstream\":\"http://h\",\"aliases\":[\"x\"]},"
                               "\"b\":{\"upstream\":\"http://h\",\"aliases\":[\"x\"]}}}";
    gw_conf_t *c = (gw_conf_t *)1;

    ck_assert_int_eq(gw_conf_load_text(json, strlen(json), &c, NULL), GW_EPARAM);
    ck_assert_ptr_null(c);
}
END_TEST

/* The length is honoured: text need not be NUL-terminated. */
START_TEST(test_text_length)
{
    static const char json[] = "{\"models\":{\"q\":{\"upstream\":\"http://h\"}}}GARBAGE";
    gw_conf_t *c = NULL;
    gw_errbuf_t err;

    ck_assert_int_eq(gw_conf_load_text(json, sizeof(json) - 1 - 7, &c, &err), GW_OK);
    gw_conf_free(c);
    ck_assert_int_eq(gw_conf_load_text(json, sizeof(json) - 1, &c, &err), GW_EBADJSON);
    ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_free_null)
{
    gw_conf_free(NULL);
}
END_TEST

/* ---------------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------------- */

/* Creates a temporary file with the given content; returns its path (static buffer). */
static const char *temp_file(const char *content, size_t len)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/check_conf.XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

START_TEST(test_file_ok)
{
    static const char json[] = "{\"models\":{\"q\":{\"upstream\":\"http://h/\"}},"
                               "\"listen\":{\"port\":0}}\n";
    const char *path = temp_file(json, sizeof(json) - 1);
    gw_conf_t *c = NULL;
    gw_errbuf_t err;

    ck_assert_int_eq(gw_conf_load_file(path, &c, &err), GW_OK);
    ck_assert_uint_eq(c->listen_port, 0);
    ck_assert_str_eq(c->models[0].upstream, "http://h");
    gw_conf_free(c);
    unlink(path);
}
END_TEST

/* Content errors are reported as by gw_conf_load_text, without the path. */
START_TEST(test_file_bad_content)
{
    const char *path = temp_file("{\"models\":{}}", 13);
    gw_conf_t *c = (gw_conf_t *)1;
    gw_errbuf_t err;

    ck_assert_int_eq(gw_conf_load_file(path, &c, &err), GW_EPARAM);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(err.msg, "models: expected at least one model");
    unlink(path);

    path = temp_file("", 0);
    ck_assert_int_eq(gw_conf_load_file(path, &c, &err), GW_EBADJSON);
    ck_assert_str_eq(err.msg, "line 1 column 0: '[' or '{' expected near end of file");
    unlink(path);
}
END_TEST

START_TEST(test_file_missing)
{
    gw_conf_t *c = (gw_conf_t *)1;
    gw_errbuf_t err;

    ck_assert_int_eq(gw_conf_load_file("/nonexistent-dir/config.json", &c, &err), GW_EINTERNAL);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(err.msg, "/nonexistent-dir/config.json: No such file or directory");
}
END_TEST

START_TEST(test_file_is_directory)
{
    gw_conf_t *c = (gw_conf_t *)1;
    gw_errbuf_t err;

    ck_assert_int_eq(gw_conf_load_file("/tmp", &c, &err), GW_EINTERNAL);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(err.msg, "/tmp: Is a directory");
}
END_TEST

/* 16 MiB is the cap: a (sparse) file one byte over it is refused without parsing. */
START_TEST(test_file_too_big)
{
    const char *path = temp_file("", 0);
    gw_conf_t *c = (gw_conf_t *)1;
    gw_errbuf_t err;
    char want[128];

    ck_assert_int_eq(truncate(path, 16 * 1024 * 1024 + 1), 0);
    ck_assert_int_eq(gw_conf_load_file(path, &c, &err), GW_ETOOBIG);
    ck_assert_ptr_null(c);
    snprintf(want, sizeof(want), "%s: larger than 16 MiB", path);
    ck_assert_str_eq(err.msg, want);

    /* Exactly 16 MiB is read (and then fails as JSON: it is all NUL bytes). */
    ck_assert_int_eq(truncate(path, 16 * 1024 * 1024), 0);
    ck_assert_int_eq(gw_conf_load_file(path, &c, &err), GW_EBADJSON);
    unlink(path);
}
END_TEST

static Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc;

    tc = tcase_create("good");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_empty_sections);
    tcase_add_test(tc, test_full);
    tcase_add_test(tc, test_range_edges);
    tcase_add_test(tc, test_log_levels);
    tcase_add_test(tc, test_upstream_accepted);
    tcase_add_test(tc, test_aliases_namespace);
    tcase_add_test(tc, test_names_utf8);
    tcase_add_test(tc, test_spawned);
    tcase_add_test(tc, test_expand);
    tcase_add_test(tc, test_split_http_url);
    tcase_add_test(tc, test_free_null);
    tcase_add_test(tc, test_exposed_host_needs_keys_or_flag);
    tcase_add_test(tc, test_loopback);
    tcase_add_test(tc, test_key_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad");
    tcase_add_loop_test(tc, test_bad, 0, N_BAD);
    tcase_add_test(tc, test_bad_without_errbuf);
    tcase_add_test(tc, test_text_length);
    suite_add_tcase(s, tc);

    tc = tcase_create("file");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_file_ok);
    tcase_add_test(tc, test_file_bad_content);
    tcase_add_test(tc, test_file_missing);
    tcase_add_test(tc, test_file_is_directory);
    tcase_add_test(tc, test_file_too_big);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conf_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
