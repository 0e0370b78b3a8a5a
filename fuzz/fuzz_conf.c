/*
 * fuzz_conf.c - libFuzzer target for the configuration loader (conf/conf.c
 * gw_conf_load_text), including the security sections, and for what is built from a
 * loaded configuration (the registry and the API key set).
 *
 * Properties: a failure returns NULL with a message; a success satisfies what the rest
 * of the gateway relies on: at least one model with an upstream, every key's model
 * list resolves through the registry, TLS paths come in pairs, and a non-loopback
 * listen address has keys or allow_unauthenticated.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/registry.h"
#include "conf/conf.h"
#include "http/auth.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_conf_t *c = (gw_conf_t *)1;
    gw_errbuf_t err;
    gw_registry_t *reg;
    gw_auth_t *auth;
    gw_err_t rc;
    size_t i, j;

    memset(&err, 0, sizeof(err));
    rc = gw_conf_load_text((const char *)data, size, &c, &err);
    if (rc != GW_OK) {
        if (c != NULL || err.msg[0] == '\0')
            abort();
        return 0;
    }
    if (c == NULL || c->n_models == 0)
        abort();
    for (i = 0; i < c->n_models; i++)
        if (c->models[i].name == NULL || c->models[i].upstream == NULL)
            abort();
    if ((c->tls_cert == NULL) != (c->tls_key == NULL))
        abort();
    if (c->n_keys == 0 && !c->allow_unauthenticated && !gw_conf_host_is_loopback(c->listen_host))
        abort();
    reg = gw_registry_new(c);
    for (i = 0; i < c->n_keys; i++)
        for (j = 0; j < c->keys[i].n_models; j++)
            if (gw_registry_find(reg, c->keys[i].models[j], strlen(c->keys[i].models[j])) == NULL)
                abort();
    auth = gw_auth_new(c, reg);
    if (gw_auth_count(auth) != c->n_keys)
        abort();
    gw_auth_free(auth);
    gw_registry_free(reg);
    gw_conf_free(c);
    return 0;
}
