/*
 * buf.h - gw_buf_t, a growable byte buffer with a hard ceiling (curl's dynbuf).
 *
 * The fields are public for reading (ptr, len); only buf.c writes them. A buffer
 * always keeps a NUL after its content, so ptr can be used as a C string when the
 * content has no NUL. An add that would pass the ceiling fails with GW_ETOOBIG and
 * leaves the buffer unchanged. Not thread-safe: the owner serialises access.
 */
#ifndef GW_CORE_BUF_H
#define GW_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/err.h"

typedef struct gw_buf {
    char *ptr;    /* NULL until the first add */
    size_t len;   /* bytes of content */
    size_t cap;   /* allocated bytes, content + NUL */
    size_t max;   /* ceiling on len */
} gw_buf_t;

void gw_buf_init(gw_buf_t *b, size_t max);
gw_err_t gw_buf_add(gw_buf_t *b, const void *data, size_t n);
gw_err_t gw_buf_adds(gw_buf_t *b, const char *s);
gw_err_t gw_buf_addf(gw_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
gw_err_t gw_buf_add_json_str(gw_buf_t *b, const char *s, size_t n);
/* Appends the whole file at path. GW_OK; GW_ETOOBIG when it passes the ceiling;
 * GW_EINTERNAL when it cannot be opened or read, with the errno in *err_no. The read
 * buffer is wiped afterwards (files may hold secrets; wiping b is the caller's). */
gw_err_t gw_buf_read_file(gw_buf_t *b, const char *path, int *err_no);
/* Removes the first n bytes (n <= len). */
void gw_buf_consume(gw_buf_t *b, size_t n);
void gw_buf_reset(gw_buf_t *b);             /* len = 0, memory kept */
/* Moves the content out: caller owns the returned malloc'd block (NULL if empty). */
char *gw_buf_take(gw_buf_t *b, size_t *len);
void gw_buf_free(gw_buf_t *b);

#endif
