/*
 * text.h - making client-controlled bytes safe to put into JSON text.
 *
 * Error messages quote what the client sent (a path, a model name). jansson refuses
 * to build a string that is not valid UTF-8, so one stray byte in a request line
 * used to turn an error answer into a NULL body. Pure functions, any thread.
 */
#ifndef GW_CORE_TEXT_H
#define GW_CORE_TEXT_H

#include <stddef.h>

/*
 * Replaces, in place, every byte of s (NUL-terminated) that is not part of a valid
 * UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF)
 * with '?'. Returns the number of bytes replaced.
 */
size_t gw_text_utf8_fix(char *s);

/*
 * Length of the well-formed UTF-8 sequence at s (n bytes available): 1 for ASCII, 2 to 4
 * for a valid multi-byte sequence, 0 if s does not start one or it is cut short. The
 * ranges are Unicode's table 3-7 (what jansson accepts): no overlong forms, no
 * surrogates, nothing above U+10FFFF. Inline: the JSON checker calls it per character.
 */
static inline size_t gw_text_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c, lo = 0x80, hi = 0xBF;

    if (n == 0)
        return 0;
    c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && s[1] >= 0x80 && s[1] <= 0xBF ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
        return n >= 3 && s[1] >= lo && s[1] <= hi && s[2] >= 0x80 && s[2] <= 0xBF ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
        return n >= 4 && s[1] >= lo && s[1] <= hi && s[2] >= 0x80 && s[2] <= 0xBF &&
                       s[3] >= 0x80 && s[3] <= 0xBF
                   ? 4
                   : 0;
    }
    return 0;
}

/* The value of one hex digit (either case), or -1. */
int gw_text_hexval(int c);

#endif
