/* text.c - UTF-8 repair for client-controlled text (text.h). */
#include "core/text.h"

#include <string.h>

size_t gw_text_utf8_fix(char *s)
{
    unsigned char *p = (unsigned char *)s, *end = p + strlen(s);
    size_t fixed = 0, n;

    while (p < end) {
        n = gw_text_utf8_len(p, (size_t)(end - p));
        if (n == 0) {
            *p++ = '?';
            fixed++;
        } else {
            p += n;
        }
    }
    return fixed;
}

int gw_text_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
