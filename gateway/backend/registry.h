/*
 * registry.h - the configured models at run time: name/alias lookup and live state.
 *
 * Built once from the configuration and read-only afterwards, except for the state
 * fields, which are atomics updated from any thread (the upstream thread records each
 * backend answer; the supervisor, when there is one, owns process states).
 */
#ifndef GW_BACKEND_REGISTRY_H
#define GW_BACKEND_REGISTRY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

typedef enum gw_model_state {
    GW_MODEL_UNKNOWN = 0, /* no backend answer seen yet */
    GW_MODEL_READY,       /* last answer was a normal HTTP response */
    GW_MODEL_LOADING,     /* last answer was 503 (llama-server loading) */
    GW_MODEL_UNREACHABLE, /* last attempt could not connect */
} gw_model_state_t;

struct gw_proc;

typedef struct gw_model {
    const gw_model_conf_t *conf; /* borrowed from the configuration */
    struct gw_proc *proc;        /* the supervisor's state for a spawned model, else NULL;
                                    set before serving, then constant */
    /* The backend's base URL: conf->upstream, or for a command with ${PORT}
     * "http://127.0.0.1:PORT" (backend/supervisor.c picks the port before serving and
     * keeps it across restarts unless another process took it). Read it once per use;
     * a string once published stays valid until the supervisor is freed. */
    const char *_Atomic upstream;
    size_t index;
    atomic_int state;            /* gw_model_state_t */
    atomic_long inflight;        /* requests currently relayed */
    atomic_ulong requests;       /* requests relayed since start */
} gw_model_t;

typedef struct gw_registry gw_registry_t;

gw_registry_t *gw_registry_new(const gw_conf_t *conf);
void gw_registry_free(gw_registry_t *reg);
/* Finds a model by exact name or alias (len bytes, not NUL-terminated); borrowed. */
gw_model_t *gw_registry_find(gw_registry_t *reg, const char *name, size_t len);
size_t gw_registry_count(const gw_registry_t *reg);
gw_model_t *gw_registry_at(gw_registry_t *reg, size_t i);
const char *gw_model_state_name(gw_model_state_t s);

#endif
