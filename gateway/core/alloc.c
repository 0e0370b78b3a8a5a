/* alloc.c - abort-on-OOM wrappers. */
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "llama-gateway: out of memory allocating %zu bytes\n", n);
    abort();
}

void *gw_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (p == NULL)
        oom(n);
    return p;
}

void *gw_xcalloc(size_t nmemb, size_t n)
{
    void *p = calloc(nmemb ? nmemb : 1, n ? n : 1);

    if (p == NULL)
        oom(nmemb * n);
    return p;
}

void *gw_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (q == NULL)
        oom(n);
    return q;
}

char *gw_xstrndup(const char *s, size_t n)
{
    char *p = gw_xmalloc(n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *gw_xstrdup(const char *s)
{
    return gw_xstrndup(s, strlen(s));
}
