/* jspan.c - structural JSON scanning for byte-preserving rewrites. */
#include "core/jspan.h"

#include <string.h>

#include "core/text.h"

static size_t ws(const char *p, size_t len, size_t i)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* p[i] == '"': returns the index after the closing quote, or -1. */
static size_t skip_string(const char *p, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        const char *q;

        /* fast path: jump to the next quote or backslash */
        q = memchr(p + i, '"', len - i);
        if (q == NULL)
            return (size_t)-1;
        {
            const char *bs = memchr(p + i, '\\', (size_t)(q - (p + i)));
            if (bs == NULL)
                return (size_t)(q - p) + 1;
            i = (size_t)(bs - p) + 1; /* skip the escaped char on loop increment */
        }
    }
    return (size_t)-1;
}

/* Characters that may appear in a number or in true/false/null. */
static int literal_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' ||
           c == '.' || c == 'E';
}

size_t gw_json_skip(const char *p, size_t len, size_t i)
{
    unsigned char open[GW_JSPAN_MAX_DEPTH]; /* '{' or '[' per level, to match closers */
    int depth = 0;

    i = ws(p, len, i);
    if (i >= len)
        return (size_t)-1;
    for (;;) {
        unsigned char c;

        if (i >= len)
            return (size_t)-1;
        c = (unsigned char)p[i];
        switch (c) {
        case '"':
            i = skip_string(p, len, i);
            if (i == (size_t)-1)
                return i;
            break;
        case '{':
        case '[':
            if (depth == GW_JSPAN_MAX_DEPTH)
                return (size_t)-1;
            open[depth++] = c;
            i++;
            break;
        case '}':
        case ']':
            if (depth == 0 || open[depth - 1] != (c == '}' ? '{' : '['))
                return (size_t)-1;
            depth--;
            i++;
            break;
        case ',':
        case ':':
        case ' ':
        case '\t':
        case '\n':
        case '\r':
            if (depth == 0)
                return (size_t)-1;
            i++;
            continue;
        default:
            /* number, true, false, null: a run of literal characters (a NUL or any other
             * byte is malformed) */
            if (!literal_char(c))
                return (size_t)-1;
            while (i < len && literal_char((unsigned char)p[i]))
                i++;
            break;
        }
        if (depth == 0)
            return i;
    }
}

int gw_json_member(const char *p, size_t len, size_t off, const char *key, gw_jspan_t *out)
{
    size_t i = ws(p, len, off), klen = strlen(key);

    if (i >= len || p[i] != '{')
        return -1;
    i = ws(p, len, i + 1);
    if (i < len && p[i] == '}')
        return 0;
    for (;;) {
        size_t kstart, kend, vstart, vend;

        if (i >= len || p[i] != '"')
            return -1;
        kstart = i;
        kend = skip_string(p, len, i);
        if (kend == (size_t)-1)
            return -1;
        i = ws(p, len, kend);
        if (i >= len || p[i] != ':')
            return -1;
        vstart = ws(p, len, i + 1);
        vend = gw_json_skip(p, len, vstart);
        if (vend == (size_t)-1)
            return -1;
        if (kend - kstart - 2 == klen && memcmp(p + kstart + 1, key, klen) == 0) {
            out->mem_off = kstart;
            out->val_off = vstart;
            out->val_len = vend - vstart;
            return 1;
        }
        i = ws(p, len, vend);
        if (i >= len)
            return -1;
        if (p[i] == '}')
            return 0;
        if (p[i] != ',')
            return -1;
        i = ws(p, len, i + 1);
    }
}

int gw_json_object_next(const char *p, size_t len, size_t off, size_t *it, gw_jspan_t *m)
{
    size_t i, kend, vstart, vend;

    if (*it == (size_t)-1)
        return 0;
    if (*it == 0) {
        i = ws(p, len, off);
        if (i >= len || p[i] != '{')
            return -1;
        i = ws(p, len, i + 1);
        if (i < len && p[i] == '}') {
            *it = (size_t)-1;
            return 0;
        }
    } else {
        /* *it: just after the previous member's value */
        i = ws(p, len, *it);
        if (i >= len)
            return -1;
        if (p[i] == '}') {
            *it = (size_t)-1;
            return 0;
        }
        if (p[i] != ',')
            return -1;
        i = ws(p, len, i + 1);
    }
    if (i >= len || p[i] != '"')
        return -1;
    kend = skip_string(p, len, i);
    if (kend == (size_t)-1)
        return -1;
    vstart = ws(p, len, kend);
    if (vstart >= len || p[vstart] != ':')
        return -1;
    vstart = ws(p, len, vstart + 1);
    vend = gw_json_skip(p, len, vstart);
    if (vend == (size_t)-1)
        return -1;
    m->mem_off = i;
    m->val_off = vstart;
    m->val_len = vend - vstart;
    *it = vend;
    return 1;
}

/* The code unit of the \uXXXX escape at p[i] (p[i] == '\\'), or -1. */
static long hex4(const char *p, size_t end, size_t i)
{
    long v = 0;
    size_t k;

    if (i + 6 > end || p[i + 1] != 'u')
        return -1;
    for (k = 2; k < 6; k++) {
        int h = gw_text_hexval((unsigned char)p[i + k]);

        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

size_t gw_json_unescape(const char *p, size_t end, size_t *i, unsigned char b[4])
{
    long cp, lo;

    if (*i + 1 >= end)
        return 0;
    switch (p[*i + 1]) {
    case '"':
    case '\\':
    case '/':
        b[0] = (unsigned char)p[*i + 1];
        break;
    case 'b':
        b[0] = '\b';
        break;
    case 'f':
        b[0] = '\f';
        break;
    case 'n':
        b[0] = '\n';
        break;
    case 'r':
        b[0] = '\r';
        break;
    case 't':
        b[0] = '\t';
        break;
    case 'u':
        cp = hex4(p, end, *i);
        if (cp < 0)
            return 0;
        *i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            lo = hex4(p, end, *i);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return 0; /* a lone high surrogate: jansson refuses it */
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            *i += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return 0;
        }
        if (cp < 0x80) {
            b[0] = (unsigned char)cp;
            return 1;
        }
        if (cp < 0x800) {
            b[0] = (unsigned char)(0xC0 | (cp >> 6));
            b[1] = (unsigned char)(0x80 | (cp & 0x3F));
            return 2;
        }
        if (cp < 0x10000) {
            b[0] = (unsigned char)(0xE0 | (cp >> 12));
            b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            b[2] = (unsigned char)(0x80 | (cp & 0x3F));
            return 3;
        }
        b[0] = (unsigned char)(0xF0 | (cp >> 18));
        b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (unsigned char)(0x80 | (cp & 0x3F));
        return 4;
    default:
        return 0;
    }
    *i += 2;
    return 1;
}

int gw_json_key_eq(const char *p, size_t len, const gw_jspan_t *m, const char *key)
{
    size_t i = m->mem_off, end, klen = strlen(key), k = 0;

    if (i >= len || p[i] != '"' || (end = skip_string(p, len, i)) == (size_t)-1)
        return 0;
    end--; /* the closing quote */
    i++;
    /* the common case, no escapes: the raw bytes are the key */
    if (memchr(p + i, '\\', end - i) == NULL)
        return end - i == klen && memcmp(p + i, key, klen) == 0;
    while (i < end) {
        unsigned char b[4];
        size_t n;

        if (p[i] != '\\') {
            b[0] = (unsigned char)p[i++];
            n = 1;
        } else if ((n = gw_json_unescape(p, end, &i, b)) == 0) {
            return 0;
        }
        if (k + n > klen || memcmp(key + k, b, n) != 0)
            return 0;
        k += n;
    }
    return k == klen;
}

int gw_json_array_next(const char *p, size_t len, size_t off, size_t *it, gw_jspan_t *el)
{
    size_t i, end;

    if (*it == 0) {
        i = ws(p, len, off);
        if (i >= len || p[i] != '[')
            return -1;
        i = ws(p, len, i + 1);
        if (i < len && p[i] == ']') {
            *it = (size_t)-1;
            return 0;
        }
    } else if (*it == (size_t)-1) {
        return 0;
    } else {
        i = ws(p, len, *it);
        if (i >= len)
            return -1;
        if (p[i] == ']') {
            *it = (size_t)-1;
            return 0;
        }
        if (p[i] != ',')
            return -1;
        i = ws(p, len, i + 1);
    }
    end = gw_json_skip(p, len, i);
    if (end == (size_t)-1)
        return -1;
    el->mem_off = i;
    el->val_off = i;
    el->val_len = end - i;
    *it = end;
    return 1;
}

int gw_json_span_is_string(const char *p, const gw_jspan_t *v)
{
    return v->val_len >= 2 && p[v->val_off] == '"';
}

int gw_json_depth_ok(const char *p, size_t len, unsigned max_depth)
{
    size_t i, depth = 0;
    int in_str = 0;

    for (i = 0; i < len; i++) {
        char ch = p[i];

        if (in_str) {
            if (ch == '\\')
                i++; /* the escaped byte cannot end the string */
            else if (ch == '"')
                in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '[' || ch == '{') {
            if (++depth > max_depth)
                return 0;
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            depth--;
        }
    }
    return 1;
}
