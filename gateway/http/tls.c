/* tls.c - read and check the PEM certificate and key for HTTPS (tls.h). */
#include "http/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"

/* Reads a whole file (at most GW_TLS_MAX_PEM bytes) into a NUL-terminated string. */
static gw_err_t read_pem(const char *what, const char *path, char **out, gw_errbuf_t *err)
{
    gw_err_t rc = GW_EINTERNAL;
    gw_buf_t b;
    int err_no;

    *out = NULL;
    gw_buf_init(&b, GW_TLS_MAX_PEM);
    switch (gw_buf_read_file(&b, path, &err_no)) {
    case GW_OK:
        break;
    case GW_ETOOBIG:
        gw_errf(err, rc, NULL, "%s: %s: larger than %u KiB", what, path, GW_TLS_MAX_PEM / 1024);
        goto out;
    default:
        gw_errf(err, rc, NULL, "%s: %s: %s", what, path, strerror(err_no));
        goto out;
    }
    if (b.len == 0 || memchr(b.ptr, '\0', b.len) != NULL || strstr(b.ptr, "-----BEGIN ") == NULL) {
        gw_errf(err, rc, NULL, "%s: %s: not a PEM file", what, path);
        goto out;
    }
    *out = gw_buf_take(&b, NULL);
    rc = GW_OK;
out:
    if (b.ptr)
        OPENSSL_cleanse(b.ptr, b.len);
    gw_buf_free(&b);
    return rc;
}

/* Parses both with OpenSSL and checks that the key belongs to the certificate. */
static gw_err_t check_pair(const gw_tls_t *t, const char *cert_path, const char *key_path,
                           gw_errbuf_t *err)
{
    gw_err_t rc = GW_EINTERNAL;
    BIO *bc = BIO_new_mem_buf(t->cert_pem, -1), *bk = BIO_new_mem_buf(t->key_pem, -1);
    X509 *x = NULL;
    EVP_PKEY *k = NULL;

    if (bc == NULL || bk == NULL) {
        gw_errf(err, rc, NULL, "tls: out of memory");
        goto out;
    }
    x = PEM_read_bio_X509(bc, NULL, NULL, NULL);
    if (x == NULL) {
        gw_errf(err, rc, NULL, "tls.cert: %s: no PEM certificate could be read", cert_path);
        goto out;
    }
    k = PEM_read_bio_PrivateKey(bk, NULL, NULL, (void *)"");
    if (k == NULL) {
        gw_errf(err, rc, NULL,
                "tls.key: %s: no unencrypted PEM private key could be read", key_path);
        goto out;
    }
    if (X509_check_private_key(x, k) != 1) {
        gw_errf(err, rc, NULL, "tls.key: %s: does not match the certificate in %s", key_path,
                cert_path);
        goto out;
    }
    rc = GW_OK;
out:
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(bc);
    BIO_free(bk);
    return rc;
}

gw_err_t gw_tls_load(const char *cert_path, const char *key_path, gw_tls_t *out,
                     gw_errbuf_t *err)
{
    gw_err_t rc;

    memset(out, 0, sizeof(*out));
    rc = read_pem("tls.cert", cert_path, &out->cert_pem, err);
    if (rc == GW_OK)
        rc = read_pem("tls.key", key_path, &out->key_pem, err);
    if (rc == GW_OK)
        rc = check_pair(out, cert_path, key_path, err);
    if (rc != GW_OK)
        gw_tls_free(out);
    return rc;
}

void gw_tls_free(gw_tls_t *t)
{
    if (t->key_pem) {
        OPENSSL_cleanse(t->key_pem, strlen(t->key_pem));
        free(t->key_pem);
    }
    free(t->cert_pem);
    t->cert_pem = NULL;
    t->key_pem = NULL;
}
