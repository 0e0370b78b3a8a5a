/*
 * auth.c - API key set: header parsing, SHA-256 + constant-time lookup, per-key model
 * allow-lists and concurrent-request slots, and key generation (auth.h).
 */
#include "http/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"

struct gw_auth_key {
    const gw_key_conf_t *conf; /* borrowed: name, hash, limits */
    unsigned char *allowed;    /* one flag per registry model; NULL = every model */
    atomic_uint inflight;
};

struct gw_auth {
    gw_auth_key_t *keys;
    size_t n;
};

gw_auth_t *gw_auth_new(const gw_conf_t *conf, gw_registry_t *reg)
{
    gw_auth_t *a = gw_xcalloc(1, sizeof(*a));
    size_t i, j, n_models = gw_registry_count(reg);

    a->n = conf->n_keys;
    a->keys = gw_xcalloc(a->n ? a->n : 1, sizeof(*a->keys));
    for (i = 0; i < a->n; i++) {
        const gw_key_conf_t *kc = &conf->keys[i];
        gw_auth_key_t *k = &a->keys[i];

        k->conf = kc;
        atomic_init(&k->inflight, 0);
        if (kc->models == NULL)
            continue;
        /* entries are names or aliases of configured models (checked by the loader) */
        k->allowed = gw_xcalloc(n_models ? n_models : 1, 1);
        for (j = 0; j < kc->n_models; j++) {
            gw_model_t *m = gw_registry_find(reg, kc->models[j], strlen(kc->models[j]));

            if (m != NULL && m->index < n_models)
                k->allowed[m->index] = 1;
        }
    }
    return a;
}

void gw_auth_free(gw_auth_t *a)
{
    size_t i;

    if (a == NULL)
        return;
    for (i = 0; i < a->n; i++)
        free(a->keys[i].allowed);
    free(a->keys);
    free(a);
}

size_t gw_auth_count(const gw_auth_t *a)
{
    return a ? a->n : 0;
}

/* ------------------------------------------------------------------ headers ---- */

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Trims blanks around s and checks what is left. */
static gw_auth_cred_t take_key(const char *s, const char **key, size_t *len)
{
    const char *end;
    size_t i, n;

    while (is_blank(*s))
        s++;
    end = s + strlen(s);
    while (end > s && is_blank(end[-1]))
        end--;
    n = (size_t)(end - s);
    if (n == 0 || n > GW_AUTH_KEY_MAX)
        return GW_AUTH_MALFORMED;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch <= 0x20 || ch == 0x7f)
            return GW_AUTH_MALFORMED;
    }
    *key = s;
    *len = n;
    return GW_AUTH_FOUND;
}

gw_auth_cred_t gw_auth_extract(const char *authorization, const char *x_api_key,
                               const char **key, size_t *len)
{
    if (authorization != NULL) {
        const char *p = authorization;

        while (is_blank(*p))
            p++;
        if (strncasecmp(p, "Bearer", 6) == 0 && (is_blank(p[6]) || p[6] == '\0'))
            return take_key(p + 6, key, len);
        /* another scheme (Basic, ...): not ours, look at x-api-key */
    }
    if (x_api_key != NULL)
        return take_key(x_api_key, key, len);
    return authorization != NULL ? GW_AUTH_MALFORMED : GW_AUTH_NONE;
}

/* ------------------------------------------------------------------ lookup ----- */

void gw_auth_sha256(const char *text, size_t len, unsigned char out[32])
{
    unsigned int n = 0;

    if (EVP_Digest(text, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        abort(); /* SHA-256 cannot fail short of a broken libcrypto */
}

void gw_auth_hex(const unsigned char in[32], char out[65])
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < 32; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[64] = '\0';
}

gw_auth_key_t *gw_auth_find(gw_auth_t *a, const char *key, size_t len)
{
    unsigned char h[32];
    size_t i, hit = 0;

    gw_auth_sha256(key, len, h);
    /*
     * Every configured hash is compared, in constant time each, and the index is
     * folded in with a mask instead of a branch. The loader rejects two keys with one
     * hash, so at most one comparison matches.
     */
    for (i = 0; i < a->n; i++) {
        size_t eq = (size_t)(CRYPTO_memcmp(h, a->keys[i].conf->sha256, sizeof(h)) == 0);

        hit |= (0 - eq) & (i + 1);
    }
    OPENSSL_cleanse(h, sizeof(h));
    return hit ? &a->keys[hit - 1] : NULL;
}

const char *gw_auth_key_name(const gw_auth_key_t *k)
{
    return k ? k->conf->name : "-";
}

int gw_auth_allows(const gw_auth_key_t *k, const gw_model_t *m)
{
    if (k == NULL || k->allowed == NULL)
        return 1;
    return m != NULL && k->allowed[m->index];
}

int gw_auth_acquire(gw_auth_key_t *k)
{
    unsigned cur, max = k->conf->max_concurrent;

    if (max == 0) {
        atomic_fetch_add(&k->inflight, 1);
        return 1;
    }
    cur = atomic_load(&k->inflight);
    do {
        if (cur >= max)
            return 0;
    } while (!atomic_compare_exchange_weak(&k->inflight, &cur, cur + 1));
    return 1;
}

void gw_auth_release(gw_auth_key_t *k)
{
    atomic_fetch_sub(&k->inflight, 1);
}

unsigned gw_auth_max_concurrent(const gw_auth_key_t *k)
{
    return k->conf->max_concurrent;
}

/* ------------------------------------------------------------------ keygen ----- */

gw_err_t gw_auth_keygen(char *out, size_t cap)
{
    static const char b64url[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[33]; /* 32 random bytes + one zero byte of padding for the loop */
    size_t i, o = sizeof(GW_AUTH_KEY_PREFIX) - 1;

    if (cap < GW_AUTH_KEY_LEN + 1)
        return GW_EINTERNAL;
    if (RAND_bytes(raw, 32) != 1)
        return GW_EINTERNAL;
    raw[32] = 0;
    memcpy(out, GW_AUTH_KEY_PREFIX, o);
    /* 32 bytes = 256 bits = 42 full sextets + 4 bits: 43 characters, no padding */
    for (i = 0; i < 33; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 |
                     (i + 2 < 33 ? raw[i + 2] : 0);

        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    o = GW_AUTH_KEY_LEN;
    out[o] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return GW_OK;
}

int gw_auth_keygen_main(const char *name, FILE *out, FILE *err)
{
    char key[GW_AUTH_KEY_LEN + 1], hex[65];
    unsigned char h[32];

    if (name == NULL || !gw_conf_key_name_ok(name)) {
        fprintf(err, "llama-gateway keygen: NAME must be 1 to 64 letters, digits, '.', '_' "
                     "or '-'\nusage: llama-gateway keygen NAME\n");
        return 2;
    }
    if (gw_auth_keygen(key, sizeof(key)) != GW_OK) {
        fprintf(err, "llama-gateway keygen: the OpenSSL random generator failed\n");
        return 1;
    }
    gw_auth_sha256(key, strlen(key), h);
    gw_auth_hex(h, hex);
    fprintf(out,
            "# API key \"%s\". It is shown only now: the gateway keeps only its SHA-256.\n"
            "%s\n"
            "# Add this entry to \"auth\": {\"keys\": {...}} in the configuration:\n"
            "\"%s\": {\"sha256\": \"%s\"}\n",
            name, key, name, hex);
    OPENSSL_cleanse(key, sizeof(key));
    return ferror(out) ? 1 : 0;
}
