/*
 * auth.h - API keys: who may use the gateway, which models, how many requests at once.
 *
 * The configuration holds, per key, a name and the SHA-256 of the key text (conf.h
 * auth.keys). A presented key is hashed with OpenSSL's EVP and compared with every
 * configured hash using CRYPTO_memcmp, always all of them, so that neither the time
 * nor the path taken tells which key (if any) was close. The key text is never stored,
 * logged or forwarded; a key is known by its name.
 *
 * Built once at start-up from a validated configuration and the registry; afterwards
 * only the per-key in-flight counters change (atomics), so every function may be
 * called from any thread.
 */
#ifndef GW_HTTP_AUTH_H
#define GW_HTTP_AUTH_H

#include <stddef.h>
#include <stdio.h>

#include "backend/registry.h"
#include "conf/conf.h"
#include "core/err.h"

#define GW_AUTH_KEY_MAX 512     /* longest key text accepted from a client */
#define GW_AUTH_KEY_PREFIX "sk-gw-"
#define GW_AUTH_KEY_LEN 49      /* "sk-gw-" + 43 base64url characters (32 random bytes) */

typedef struct gw_auth gw_auth_t;
typedef struct gw_auth_key gw_auth_key_t;

/* What a request's headers carry (gw_auth_extract). */
typedef enum gw_auth_cred {
    GW_AUTH_NONE = 0,  /* neither header: "missing API key" */
    GW_AUTH_FOUND,     /* a candidate key text */
    GW_AUTH_MALFORMED, /* a header is there but holds no usable key */
} gw_auth_cred_t;

/* conf must have passed gw_conf_load_* (model names resolve); both are borrowed. */
gw_auth_t *gw_auth_new(const gw_conf_t *conf, gw_registry_t *reg);
void gw_auth_free(gw_auth_t *a);
/* Number of configured keys; 0 means authentication is off. */
size_t gw_auth_count(const gw_auth_t *a);

/*
 * Picks the key out of the request headers (values as received, or NULL when absent):
 * "Authorization: Bearer KEY" (scheme case-insensitive) first; when that header is
 * absent or uses another scheme, "x-api-key: KEY". Surrounding blanks are dropped; a
 * key with inner whitespace or control characters, or longer than GW_AUTH_KEY_MAX, is
 * GW_AUTH_MALFORMED. On GW_AUTH_FOUND, *key and *len point into one of the arguments.
 */
gw_auth_cred_t gw_auth_extract(const char *authorization, const char *x_api_key,
                               const char **key, size_t *len);

/* The configured key whose hash matches the key text (len bytes), or NULL. Constant
 * time in the number of configured keys (see the file comment). Borrowed. */
gw_auth_key_t *gw_auth_find(gw_auth_t *a, const char *key, size_t len);

const char *gw_auth_key_name(const gw_auth_key_t *k);
/* 1 if key k may use model m (k == NULL: authentication is off, so yes). */
int gw_auth_allows(const gw_auth_key_t *k, const gw_model_t *m);
/* Takes one of k's concurrent-request slots: 1 on success, 0 when all are in use.
 * Every success must be paired with gw_auth_release. */
int gw_auth_acquire(gw_auth_key_t *k);
void gw_auth_release(gw_auth_key_t *k);
unsigned gw_auth_max_concurrent(const gw_auth_key_t *k);

/* SHA-256 of len bytes, as 32 bytes and as 64 lowercase hex digits plus NUL. */
void gw_auth_sha256(const char *text, size_t len, unsigned char out[32]);
void gw_auth_hex(const unsigned char in[32], char out[65]);

/* A new random key (OpenSSL RAND_bytes) into out (cap >= GW_AUTH_KEY_LEN + 1).
 * GW_EINTERNAL if the RNG fails. */
gw_err_t gw_auth_keygen(char *out, size_t cap);
/* `llama-gateway keygen NAME`: writes the key and the configuration entry to out,
 * problems to err. Returns the process exit status. */
int gw_auth_keygen_main(const char *name, FILE *out, FILE *err);

#endif
