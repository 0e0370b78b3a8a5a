/*
 * jcheck.c - strict one-pass JSON validation (see jcheck.h for the contract).
 *
 * Each rule below is written against jansson 2.14's src/load.c, which it must never be
 * looser than: the lexer (strings, escapes, numbers, literals), the UTF-8 check in its
 * stream reader, the \u decoding pass (surrogates, NUL) and the parser (grammar, depth,
 * end of input). Where this file is stricter, the comment says so.
 */
#include "core/jcheck.h"

#include <stdint.h>
#include <string.h>

#include "core/jspan.h"
#include "core/text.h"

#define BAD ((size_t)-1)

static size_t ws(const char *p, size_t len, size_t i)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

int gw_jcheck_rest_ws(const char *p, size_t len, size_t i)
{
    return ws(p, len, i) == len;
}

/* ================================================================ strings ==== */

/*
 * 1 if none of the 8 bytes in w needs a look in a string: each is 0x20..0x7F and neither
 * '"' nor '\\'. Classic "has a byte less than n" / "has a zero byte" tricks, which are
 * exact as a yes/no answer.
 */
static int plain8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t ctl = (w - ones * 0x20) & ~w & high;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');

    q = (q - ones) & ~q & high;
    b = (b - ones) & ~b & high;
    return ((w & high) | ctl | q | b) == 0;
}

/* The code unit of "XXXX" at p[i] (4 hex digits), or -1. */
static long hex4(const char *p, size_t len, size_t i)
{
    long v = 0;
    size_t k;

    if (i > len || len - i < 4)
        return -1;
    for (k = 0; k < 4; k++) {
        int h = gw_text_hexval((unsigned char)p[i + k]);

        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/*
 * p[i] == '"': returns the index after the closing quote, or BAD. *escaped is set when
 * the string holds a backslash. Rejects raw control bytes (jansson: "control character",
 * "unexpected newline"), invalid escapes, \u0000 (jansson: "\u0000 is not allowed
 * without JSON_ALLOW_NUL", and "NUL byte in object key" for keys), a high surrogate not
 * followed by a \u low surrogate, a lone low surrogate, and malformed UTF-8.
 */
static size_t scan_string(const char *p, size_t len, size_t i, int *escaped)
{
    *escaped = 0;
    for (i++;;) {
        unsigned char c;

        while (len - i >= 8) {
            uint64_t w;

            memcpy(&w, p + i, 8);
            if (!plain8(w))
                break;
            i += 8;
        }
        if (i >= len)
            return BAD;
        c = (unsigned char)p[i];
        if (c == '"')
            return i + 1;
        if (c < 0x20)
            return BAD;
        if (c < 0x80 && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = gw_text_utf8_len((const unsigned char *)p + i, len - i);

            if (n == 0)
                return BAD;
            i += n;
            continue;
        }
        /* c == '\\' */
        *escaped = 1;
        if (++i >= len)
            return BAD;
        switch (p[i]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            i++;
            break;
        case 'u': {
            long u = hex4(p, len, i + 1), u2;

            if (u <= 0) /* invalid, or \u0000 */
                return BAD;
            i += 5;
            if (u >= 0xDC00 && u <= 0xDFFF)
                return BAD; /* low surrogate first */
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (len - i < 6 || p[i] != '\\' || p[i + 1] != 'u')
                    return BAD;
                u2 = hex4(p, len, i + 2);
                if (u2 < 0xDC00 || u2 > 0xDFFF)
                    return BAD;
                i += 6;
            }
            break;
        }
        default:
            return BAD;
        }
    }
}

size_t gw_jcheck_unescape(const char *s, size_t n, char *out, size_t cap)
{
    size_t i = 0, o = 0;

    while (i < n) {
        unsigned char b[4];
        size_t k;

        if (s[i] != '\\') {
            b[0] = (unsigned char)s[i++];
            k = 1;
        } else if ((k = gw_json_unescape(s, n, &i, b)) == 0) {
            return BAD;
        }
        if (cap - o < k)
            return BAD;
        memcpy(out + o, b, k);
        o += k;
    }
    return o;
}

/* ================================================================ numbers ==== */

/* Exponents stop growing here: far above any digit count a body can hold. */
#define EXP_SATURATE 100000000000000000LL /* 1e17 */

static int digit(const char *p, size_t len, size_t i)
{
    return i < len && p[i] >= '0' && p[i] <= '9';
}

/*
 * p[i] is '-' or a digit. Returns the index after the number, or BAD. The grammar is
 * RFC 8259's, as jansson's lex_scan_number: no leading zeros, no '+', digits on both
 * sides of '.', at least one exponent digit. Without '.', 'e' or 'E' the number is an
 * integer and must fit int64 (jansson: strtoll, ERANGE is "too big integer"). A real is
 * refused when its magnitude is 1e308 or more: strtod overflows (jansson: "real number
 * overflow") only above DBL_MAX ~ 1.797e308, so this is stricter by that sliver.
 * Underflow is fine: jansson accepts it (strtod's 0 or subnormal).
 */
static size_t scan_number(const char *p, size_t len, size_t i, gw_jtype_t *type)
{
    static const char int64_max[] = "9223372036854775807";
    static const char int64_min[] = "9223372036854775808"; /* without the '-' */
    size_t int_off, int_len, frac_off = 0, frac_len = 0;
    int neg = 0, real = 0, exp_neg = 0;
    long long exp = 0, mag;

    if (p[i] == '-') {
        neg = 1;
        i++;
    }
    int_off = i;
    if (!digit(p, len, i))
        return BAD;
    if (p[i] == '0') {
        i++;
        if (digit(p, len, i))
            return BAD; /* leading zero */
    } else {
        while (digit(p, len, i))
            i++;
    }
    int_len = i - int_off;
    if (i < len && p[i] == '.') {
        real = 1;
        frac_off = ++i;
        if (!digit(p, len, i))
            return BAD;
        while (digit(p, len, i))
            i++;
        frac_len = i - frac_off;
    }
    if (i < len && (p[i] == 'e' || p[i] == 'E')) {
        real = 1;
        i++;
        if (i < len && (p[i] == '+' || p[i] == '-'))
            exp_neg = p[i++] == '-';
        if (!digit(p, len, i))
            return BAD;
        while (digit(p, len, i)) {
            if (exp < EXP_SATURATE)
                exp = exp * 10 + (p[i] - '0');
            i++;
        }
    }
    if (!real) {
        if (int_len > 19 ||
            (int_len == 19 && memcmp(p + int_off, neg ? int64_min : int64_max, 19) > 0))
            return BAD;
        *type = GW_JT_INTEGER;
        return i;
    }
    /* mag: the power of ten of the first significant digit */
    if (p[int_off] != '0') {
        mag = (long long)int_len - 1;
    } else {
        size_t z = 0;

        while (z < frac_len && p[frac_off + z] == '0')
            z++;
        if (z == frac_len) {
            *type = GW_JT_REAL; /* zero */
            return i;
        }
        mag = -(long long)z - 1;
    }
    if (mag + (exp_neg ? -exp : exp) >= 308)
        return BAD;
    *type = GW_JT_REAL;
    return i;
}

/* ================================================================ values ===== */

/* What the scanner waits for next (one state per grammar position). */
typedef enum {
    ST_VALUE, /* a value: scalar, or '{' / '[' which pushes a level */
    ST_KEY,   /* inside an object, after '{' or ',': a string key, then ':' -> ST_VALUE */
    ST_AFTER, /* a value ended: ',' or the level's closer, or return at depth 0 */
} scan_state_t;

/* The bit stack of open levels: 1 for an object, 0 for an array. */
static void level_set(unsigned char *bits, unsigned level, int obj)
{
    if (obj)
        bits[level / 8] |= (unsigned char)(1u << (level % 8));
    else
        bits[level / 8] &= (unsigned char)~(1u << (level % 8));
}

static int level_is_obj(const unsigned char *bits, unsigned level)
{
    return (bits[level / 8] >> (level % 8)) & 1;
}

size_t gw_jcheck_value(const char *p, size_t len, size_t i, unsigned max_depth,
                       gw_jtype_t *type)
{
    unsigned char is_obj[GW_JCHECK_MAX_DEPTH / 8] = {0}; /* one bit per open level */
    unsigned depth = 0;
    scan_state_t st = ST_VALUE;
    gw_jtype_t t = GW_JT_NULL;
    int esc;

    if (max_depth > GW_JCHECK_MAX_DEPTH)
        max_depth = GW_JCHECK_MAX_DEPTH;
    for (;;) {
        i = ws(p, len, i);
        if (i >= len)
            return BAD;
        switch (st) {
        case ST_VALUE:
            switch (p[i]) {
            case '"':
                i = scan_string(p, len, i, &esc);
                if (i == BAD)
                    return BAD;
                t = GW_JT_STRING;
                st = ST_AFTER;
                break;
            case '{':
            case '[':
                if (depth == max_depth)
                    return BAD;
                level_set(is_obj, depth++, p[i] == '{');
                i = ws(p, len, i + 1);
                if (i < len && (p[i] == '}' || p[i] == ']')) {
                    int obj = level_is_obj(is_obj, depth - 1);

                    if (p[i] != (obj ? '}' : ']'))
                        return BAD;
                    depth--;
                    i++;
                    t = obj ? GW_JT_OBJECT : GW_JT_ARRAY;
                    st = ST_AFTER;
                } else {
                    st = level_is_obj(is_obj, depth - 1) ? ST_KEY : ST_VALUE;
                }
                break;
            case 't':
                if (len - i < 4 || memcmp(p + i, "true", 4) != 0)
                    return BAD;
                i += 4;
                t = GW_JT_TRUE;
                st = ST_AFTER;
                break;
            case 'f':
                if (len - i < 5 || memcmp(p + i, "false", 5) != 0)
                    return BAD;
                i += 5;
                t = GW_JT_FALSE;
                st = ST_AFTER;
                break;
            case 'n':
                if (len - i < 4 || memcmp(p + i, "null", 4) != 0)
                    return BAD;
                i += 4;
                t = GW_JT_NULL;
                st = ST_AFTER;
                break;
            default:
                if (p[i] != '-' && (p[i] < '0' || p[i] > '9'))
                    return BAD;
                i = scan_number(p, len, i, &t);
                if (i == BAD)
                    return BAD;
                st = ST_AFTER;
                break;
            }
            break;
        case ST_KEY:
            if (p[i] != '"')
                return BAD;
            i = scan_string(p, len, i, &esc);
            if (i == BAD)
                return BAD;
            i = ws(p, len, i);
            if (i >= len || p[i] != ':')
                return BAD;
            i++;
            st = ST_VALUE;
            break;
        case ST_AFTER: /* not reached: the loop below always leaves this state */
            break;
        }
        /* ST_AFTER: close levels until a ',' or depth 0 */
        while (st == ST_AFTER) {
            int obj;

            if (depth == 0) {
                *type = t;
                return i;
            }
            i = ws(p, len, i);
            if (i >= len)
                return BAD;
            obj = level_is_obj(is_obj, depth - 1);
            if (p[i] == ',') {
                i++;
                st = obj ? ST_KEY : ST_VALUE;
            } else if (p[i] == (obj ? '}' : ']')) {
                i++;
                depth--;
                t = obj ? GW_JT_OBJECT : GW_JT_ARRAY;
            } else {
                return BAD;
            }
        }
    }
}

int gw_jcheck_text(const char *p, size_t len, unsigned max_depth, gw_jtype_t *type)
{
    gw_jtype_t t;
    size_t end = gw_jcheck_value(p, len, 0, max_depth, &t);

    if (end == BAD || !gw_jcheck_rest_ws(p, len, end))
        return 0;
    if (type)
        *type = t;
    return 1;
}

/* ================================================================ objects ==== */

enum { OBJ_START = 0, OBJ_MEMBER, OBJ_END, OBJ_BAD };

void gw_jcheck_obj_init(gw_jcheck_obj_t *it, size_t off, unsigned max_depth)
{
    it->pos = off;
    it->depth = max_depth > GW_JCHECK_MAX_DEPTH ? GW_JCHECK_MAX_DEPTH : max_depth;
    it->state = OBJ_START;
}

int gw_jcheck_obj_next(const char *p, size_t len, gw_jcheck_obj_t *it, gw_jmember_t *m)
{
    size_t i = ws(p, len, it->pos), k;

    switch (it->state) {
    case OBJ_START:
        if (it->depth == 0 || i >= len || p[i] != '{')
            goto bad;
        i = ws(p, len, i + 1);
        if (i < len && p[i] == '}')
            goto end;
        break;
    case OBJ_MEMBER:
        if (i >= len)
            goto bad;
        if (p[i] == '}')
            goto end;
        if (p[i] != ',')
            goto bad;
        i = ws(p, len, i + 1);
        break;
    case OBJ_END:
        return 0;
    default:
        return -1;
    }
    if (i >= len || p[i] != '"')
        goto bad;
    k = scan_string(p, len, i, &m->key_escaped);
    if (k == BAD)
        goto bad;
    m->key_off = i + 1;
    m->key_len = k - i - 2;
    i = ws(p, len, k);
    if (i >= len || p[i] != ':')
        goto bad;
    i = ws(p, len, i + 1);
    k = gw_jcheck_value(p, len, i, it->depth - 1, &m->type);
    if (k == BAD)
        goto bad;
    m->val_off = i;
    m->val_len = k - i;
    it->pos = k;
    it->state = OBJ_MEMBER;
    return 1;
end:
    it->pos = i + 1;
    it->state = OBJ_END;
    return 0;
bad:
    it->state = OBJ_BAD;
    return -1;
}
