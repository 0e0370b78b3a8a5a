/*
 * tls.h - the front TLS material: the PEM certificate chain and private key that
 * libmicrohttpd (GnuTLS inside) serves HTTPS with.
 *
 * libmicrohttpd takes PEM text in memory (MHD_OPTION_HTTPS_MEM_CERT/KEY), not paths,
 * so the files are read here, bounded in size, and checked with OpenSSL first: a
 * certificate that does not parse, a key that does not parse or a key that does not
 * belong to the certificate is reported naming the configuration key, instead of
 * surfacing later as an opaque failure to start the daemon. The key text is wiped
 * when freed. Start-up only; not thread-safe.
 */
#ifndef GW_HTTP_TLS_H
#define GW_HTTP_TLS_H

#include "core/err.h"

#define GW_TLS_MAX_PEM (1024u * 1024) /* a PEM file larger than this is a mistake */

typedef struct gw_tls {
    char *cert_pem; /* NUL-terminated PEM text */
    char *key_pem;
} gw_tls_t;

/* Reads and checks both files. On failure err names "tls.cert" or "tls.key". */
gw_err_t gw_tls_load(const char *cert_path, const char *key_path, gw_tls_t *out,
                     gw_errbuf_t *err);
/* Wipes the key and frees both; t may be zeroed. */
void gw_tls_free(gw_tls_t *t);

#endif
