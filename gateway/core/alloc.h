/*
 * alloc.h - allocation for internal sizes: abort on OOM (redis zmalloc). Sizes a
 * client controls are checked against limits before they get here.
 */
#ifndef GW_CORE_ALLOC_H
#define GW_CORE_ALLOC_H

#include <stddef.h>

void *gw_xmalloc(size_t n);
void *gw_xcalloc(size_t nmemb, size_t n);
void *gw_xrealloc(void *p, size_t n);
char *gw_xstrdup(const char *s);
char *gw_xstrndup(const char *s, size_t n);

#endif
