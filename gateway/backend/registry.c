/* registry.c - model lookup by name or alias (linear: a homelab has a handful). */
#include "backend/registry.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

struct gw_registry {
    gw_model_t *models;
    size_t n;
};

gw_registry_t *gw_registry_new(const gw_conf_t *conf)
{
    gw_registry_t *reg = gw_xcalloc(1, sizeof(*reg));
    size_t i;

    reg->n = conf->n_models;
    reg->models = gw_xcalloc(reg->n ? reg->n : 1, sizeof(gw_model_t));
    for (i = 0; i < reg->n; i++) {
        reg->models[i].conf = &conf->models[i];
        reg->models[i].index = i;
        atomic_init(&reg->models[i].upstream, conf->models[i].upstream);
        atomic_init(&reg->models[i].state, GW_MODEL_UNKNOWN);
        atomic_init(&reg->models[i].inflight, 0);
        atomic_init(&reg->models[i].requests, 0);
    }
    return reg;
}

void gw_registry_free(gw_registry_t *reg)
{
    if (reg == NULL)
        return;
    free(reg->models);
    free(reg);
}

static int eq(const char *s, const char *name, size_t len)
{
    return strlen(s) == len && memcmp(s, name, len) == 0;
}

gw_model_t *gw_registry_find(gw_registry_t *reg, const char *name, size_t len)
{
    size_t i, j;

    for (i = 0; i < reg->n; i++)
        if (eq(reg->models[i].conf->name, name, len))
            return &reg->models[i];
    for (i = 0; i < reg->n; i++)
        for (j = 0; j < reg->models[i].conf->n_aliases; j++)
            if (eq(reg->models[i].conf->aliases[j], name, len))
                return &reg->models[i];
    return NULL;
}

size_t gw_registry_count(const gw_registry_t *reg)
{
    return reg->n;
}

gw_model_t *gw_registry_at(gw_registry_t *reg, size_t i)
{
    return i < reg->n ? &reg->models[i] : NULL;
}

const char *gw_model_state_name(gw_model_state_t s)
{
    switch (s) {
    case GW_MODEL_READY:
        return "ready";
    case GW_MODEL_LOADING:
        return "loading";
    case GW_MODEL_UNREACHABLE:
        return "unreachable";
    default:
        return "unknown";
    }
}
