/*
 * main.c - llama-gateway entry point: parse argv, load the configuration, build the
 * modules bottom-up, wait for a signal, tear down top-down.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "backend/registry.h"
#include "backend/supervisor.h"
#include "conf/conf.h"
#include "core/log.h"
#include "http/auth.h"
#include "http/server.h"

#define GW_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: llama-gateway [--config FILE] [--check-config] [--port N]\n"
            "       llama-gateway keygen NAME\n"
            "       llama-gateway --version | --help\n"
            "\n"
            "  --config FILE    JSON configuration (default: the embedded copy of\n"
            "                   config/default.json, built into this binary)\n"
            "  --print-default-config  print the embedded default configuration and exit\n"
            "  --check-config   validate the configuration and exit (0 valid, 1 invalid)\n"
            "  --port N         override listen.port\n"
            "  keygen NAME      print a new API key and its auth.keys entry\n");
}

static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* default_config.c, generated from config/default.json at build time */
extern const unsigned char gw_default_config[];
extern const size_t gw_default_config_len;

int main(int argc, char **argv)
{
    const char *path = NULL; /* NULL: the embedded default */
    int check_only = 0, i, sig, rc = 1;
    long port_override = -1;
    gw_conf_t *conf = NULL;
    gw_registry_t *reg = NULL;
    gw_supervisor_t *sup = NULL;
    gw_server_t *srv = NULL;
    gw_errbuf_t err;
    sigset_t set;

    if (argc >= 2 && strcmp(argv[1], "keygen") == 0) {
        if (argc != 3) {
            fprintf(stderr, "usage: llama-gateway keygen NAME\n");
            return 2;
        }
        return gw_auth_keygen_main(argv[2], stdout, stderr);
    }
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--print-default-config") == 0) {
            fwrite(gw_default_config, 1, gw_default_config_len, stdout);
            return 0;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check_only = 1;
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            port_override = strtol(argv[++i], &end, 10);
            if (*end || port_override < 0 || port_override > 65535) {
                fprintf(stderr, "llama-gateway: --port: expected 0..65535\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("llama-gateway %s\n", GW_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "llama-gateway: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    memset(&err, 0, sizeof(err));
    if ((path ? gw_conf_load_file(path, &conf, &err)
              : gw_conf_load_text((const char *)gw_default_config, gw_default_config_len, &conf,
                                   &err)) != GW_OK) {
        fprintf(stderr, "llama-gateway: invalid configuration %s: %s\n",
                path ? path : "(embedded default)", err.msg);
        return 1;
    }
    if (check_only) {
        printf("%s: configuration OK (%zu model%s)\n", path ? path : "(embedded default)",
               conf->n_models,
               conf->n_models == 1 ? "" : "s");
        gw_conf_free(conf);
        return 0;
    }
    if (port_override >= 0)
        conf->listen_port = (uint16_t)port_override;
    gw_log_level = conf->log_level;

    /* every thread inherits this mask; main waits for the signals with sigwait */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "llama-gateway: curl_global_init failed\n");
        goto out;
    }

    reg = gw_registry_new(conf);
    /* spawned backends: the supervisor thread forks them and must outlive them */
    if (gw_supervisor_new(conf, reg, &sup, &err) != GW_OK) {
        fprintf(stderr, "llama-gateway: %s\n", err.msg);
        goto out;
    }
    if (gw_server_start(conf, reg, &srv, &err) != GW_OK) {
        fprintf(stderr, "llama-gateway: %s\n", err.msg);
        goto out;
    }
    GW_LOG(GW_LOG_INFO, "llama-gateway %s listening on %s:%u with %zu model%s", GW_VERSION,
           conf->listen_host, (unsigned)gw_server_port(srv), conf->n_models,
           conf->n_models == 1 ? "" : "s");
    for (i = 0; i < (int)conf->n_models; i++) {
        const gw_model_conf_t *mc = &conf->models[i];

        if (mc->n_command == 0) {
            /* an upstream URL may carry user:password@: never log it */
            const char *u = mc->upstream, *auth = strstr(u, "://");
            const char *at = auth ? strchr(auth + 3, '@') : NULL;
            const char *slash = auth ? strchr(auth + 3, '/') : NULL;

            if (at != NULL && (slash == NULL || at < slash))
                GW_LOG(GW_LOG_INFO, "model %s -> %.*s***@%s", mc->name, (int)(auth + 3 - u), u,
                       at + 1);
            else
                GW_LOG(GW_LOG_INFO, "model %s -> %s", mc->name, u);
        } else {
            GW_LOG(GW_LOG_INFO, "model %s -> spawned on demand: %s (%u MB of VRAM, ttl %u s)",
                   mc->name, mc->command[0], mc->vram_mb, mc->ttl_s);
        }
    }
    /* a line for scripts and tests that start us on port 0 */
    printf("llama-gateway listening on %s:%u\n", conf->listen_host, (unsigned)gw_server_port(srv));
    fflush(stdout);

    if (sigwait(&set, &sig) == 0)
        GW_LOG(GW_LOG_INFO, "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    gw_server_stop(srv);
    srv = NULL;
    rc = 0;
out:
    gw_server_stop(srv);
    gw_supervisor_free(sup); /* after the server: no request can lease a model any more */
    gw_registry_free(reg);
    gw_conf_free(conf);
    curl_global_cleanup();
    return rc;
}
