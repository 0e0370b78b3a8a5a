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

/* The value of one hex digit (either case), or -1. */
int gw_text_hexval(int c);

#endif
