/* buf.c - bounded growable buffer. Allocation failure of internal sizes aborts. */
#include "core/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"

void gw_buf_init(gw_buf_t *b, size_t max)
{
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

/*
 * Makes room for extra more bytes plus the NUL. Careful with size_t: max may be
 * SIZE_MAX ("no ceiling"), so neither max + 1 nor the doubling may wrap.
 */
static gw_err_t reserve(gw_buf_t *b, size_t extra)
{
    size_t need, cap;

    if (extra > b->max - b->len || b->len + extra == SIZE_MAX)
        return GW_ETOOBIG;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return GW_OK;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap - 1 > b->max)
        cap = b->max + 1; /* max < cap - 1 <= SIZE_MAX - 1: cannot wrap */
    b->ptr = gw_xrealloc(b->ptr, cap);
    b->cap = cap;
    return GW_OK;
}

gw_err_t gw_buf_add(gw_buf_t *b, const void *data, size_t n)
{
    if (reserve(b, n) != GW_OK)
        return GW_ETOOBIG;
    if (n)
        memcpy(b->ptr + b->len, data, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return GW_OK;
}

gw_err_t gw_buf_adds(gw_buf_t *b, const char *s)
{
    return gw_buf_add(b, s, strlen(s));
}

gw_err_t gw_buf_addf(gw_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return GW_EINTERNAL;
    if ((size_t)n < sizeof(small))
        return gw_buf_add(b, small, (size_t)n);
    if (reserve(b, (size_t)n) != GW_OK)
        return GW_ETOOBIG;
    va_start(ap, fmt);
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return GW_OK;
}

/* Undoes a partly written add, so that a failed add leaves the buffer unchanged. */
static gw_err_t rollback(gw_buf_t *b, size_t len)
{
    b->len = len;
    if (b->ptr)
        b->ptr[len] = '\0';
    return GW_ETOOBIG;
}

gw_err_t gw_buf_add_json_str(gw_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, start = 0, len0 = b->len;
    char esc[8];

    if (gw_buf_add(b, "\"", 1) != GW_OK)
        return GW_ETOOBIG;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *e = NULL;
        size_t elen = 2;

        if (c == '"')
            e = "\\\"";
        else if (c == '\\')
            e = "\\\\";
        else if (c == '\n')
            e = "\\n";
        else if (c == '\r')
            e = "\\r";
        else if (c == '\t')
            e = "\\t";
        else if (c < 0x20) {
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            e = esc;
            elen = 6;
        }
        if (e == NULL)
            continue;
        if (gw_buf_add(b, s + start, i - start) != GW_OK || gw_buf_add(b, e, elen) != GW_OK)
            return rollback(b, len0);
        start = i + 1;
    }
    if (gw_buf_add(b, s + start, n - start) != GW_OK || gw_buf_add(b, "\"", 1) != GW_OK)
        return rollback(b, len0);
    return GW_OK;
}

gw_err_t gw_buf_read_file(gw_buf_t *b, const char *path, int *err_no)
{
    char chunk[16384];
    gw_err_t rc = GW_OK;
    ssize_t n;
    int fd;

    *err_no = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err_no = errno;
        return GW_EINTERNAL;
    }
    for (;;) {
        n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err_no = errno;
            rc = GW_EINTERNAL;
            break;
        }
        if (n == 0)
            break;
        if (gw_buf_add(b, chunk, (size_t)n) != GW_OK) {
            rc = GW_ETOOBIG;
            break;
        }
    }
    close(fd);
    explicit_bzero(chunk, sizeof(chunk));
    return rc;
}

void gw_buf_consume(gw_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->ptr, b->ptr + n, b->len - n);
        b->len -= n;
    }
    if (b->ptr)
        b->ptr[b->len] = '\0';
}

void gw_buf_reset(gw_buf_t *b)
{
    b->len = 0;
    if (b->ptr)
        b->ptr[0] = '\0';
}

char *gw_buf_take(gw_buf_t *b, size_t *len)
{
    char *p = b->ptr;

    if (len)
        *len = b->len;
    if (b->len == 0) {
        /* buf.h promises NULL for empty content, even if memory was kept by a reset. */
        free(p);
        p = NULL;
    }
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

void gw_buf_free(gw_buf_t *b)
{
    free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
}
