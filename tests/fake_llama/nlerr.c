/*
 * nlerr.c - nlohmann::json parse-error messages (see nlerr.h). Follows
 * nlohmann/detail/input/lexer.hpp and parser.hpp (3.11): the lexer counts a read EOF as
 * a character, unget() steps back, token_string collects the bytes of the current token
 * and prints control characters as <U+XXXX>.
 */
#include "nlerr.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

enum tok {
    T_UNINIT, T_TRUE, T_FALSE, T_NULL, T_STRING, T_NUMBER, T_BEGIN_ARRAY, T_BEGIN_OBJECT,
    T_END_ARRAY, T_END_OBJECT, T_NAME_SEP, T_VALUE_SEP, T_PARSE_ERROR, T_EOF, T_LIT_OR_VALUE,
};

static const char *tok_name(enum tok t)
{
    static const char *const names[] = {
        "<uninitialized>", "true literal", "false literal", "null literal", "string literal",
        "number literal", "'['", "'{'", "']'", "'}'", "':'", "','", "<parse error>",
        "end of input", "'[', '{', or a literal",
    };
    return names[t];
}

typedef struct lexer {
    const unsigned char *s;
    size_t n;
    size_t pos;          /* next byte to read */
    int current;         /* last read byte or -1 (EOF) */
    int next_unget;
    size_t total;        /* chars_read_total */
    size_t col;          /* chars_read_current_line */
    size_t lines;        /* lines_read */
    fl_buf_t token;      /* token_string */
    const char *error;
    char errbuf[160];
} lexer_t;

static int get(lexer_t *l)
{
    l->total++;
    l->col++;
    if (l->next_unget)
        l->next_unget = 0;
    else
        l->current = l->pos < l->n ? l->s[l->pos++] : -1;
    if (l->current != -1)
        fl_buf_addc(&l->token, (char)l->current);
    if (l->current == '\n') {
        l->lines++;
        l->col = 0;
    }
    return l->current;
}

static void unget(lexer_t *l)
{
    l->next_unget = 1;
    l->total--;
    if (l->col == 0) {
        if (l->lines > 0)
            l->lines--;
    } else {
        l->col--;
    }
    if (l->current != -1 && l->token.n > 0)
        fl_buf_truncate(&l->token, l->token.n - 1);
}

static enum tok fail(lexer_t *l, const char *msg)
{
    l->error = msg;
    return T_PARSE_ERROR;
}

static enum tok scan_literal(lexer_t *l, const char *lit, enum tok t)
{
    for (size_t i = 1; lit[i]; i++)
        if (get(l) != (unsigned char)lit[i])
            return fail(l, "invalid literal");
    return t;
}

static int hex4(lexer_t *l)
{
    int v = 0;

    for (int i = 0; i < 4; i++) {
        int c = get(l);
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static const char *const ctl_names[32] = {
    "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT", "FF",
    "CR", "SO", "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM",
    "SUB", "ESC", "FS", "GS", "RS", "US",
};

/* Checks continuation bytes in [lo,hi] pairs; returns 0 if one is out of range. */
static int utf8_tail(lexer_t *l, const int *ranges, int n_ranges)
{
    for (int i = 0; i < n_ranges; i++) {
        int c = get(l);
        if (c < ranges[2 * i] || c > ranges[2 * i + 1])
            return 0;
    }
    return 1;
}

static enum tok scan_string(lexer_t *l)
{
    for (;;) {
        int c = get(l);
        if (c == -1)
            return fail(l, "invalid string: missing closing quote");
        if (c == '"')
            return T_STRING;
        if (c == '\\') {
            int e = get(l);
            if (e == 'u') {
                int cp = hex4(l);
                if (cp < 0)
                    return fail(l, "invalid string: '\\u' must be followed by 4 hex digits");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (get(l) != '\\' || get(l) != 'u')
                        return fail(l, "invalid string: surrogate U+D800..U+DBFF must be "
                                       "followed by U+DC00..U+DFFF");
                    int lo = hex4(l);
                    if (lo < 0)
                        return fail(l, "invalid string: '\\u' must be followed by 4 hex "
                                       "digits");
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return fail(l, "invalid string: surrogate U+D800..U+DBFF must be "
                                       "followed by U+DC00..U+DFFF");
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return fail(l, "invalid string: surrogate U+DC00..U+DFFF must follow "
                                   "U+D800..U+DBFF");
                }
                continue;
            }
            if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' &&
                e != 'r' && e != 't')
                return fail(l, "invalid string: forbidden character after backslash");
            continue;
        }
        if (c < 0x20) {
            static const char alt[32] = { ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n',
                                          ['\f'] = 'f', ['\r'] = 'r' };
            if (alt[c])
                snprintf(l->errbuf, sizeof(l->errbuf),
                         "invalid string: control character U+%04X (%s) must be escaped to "
                         "\\u%04X or \\%c", c, ctl_names[c], c, alt[c]);
            else
                snprintf(l->errbuf, sizeof(l->errbuf),
                         "invalid string: control character U+%04X (%s) must be escaped to "
                         "\\u%04X", c, ctl_names[c], c);
            return fail(l, l->errbuf);
        }
        if (c < 0x80)
            continue;
        int ok;
        if (c >= 0xC2 && c <= 0xDF) {
            const int r[] = { 0x80, 0xBF };
            ok = utf8_tail(l, r, 1);
        } else if (c == 0xE0) {
            const int r[] = { 0xA0, 0xBF, 0x80, 0xBF };
            ok = utf8_tail(l, r, 2);
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            const int r[] = { 0x80, 0xBF, 0x80, 0xBF };
            ok = utf8_tail(l, r, 2);
        } else if (c == 0xED) {
            const int r[] = { 0x80, 0x9F, 0x80, 0xBF };
            ok = utf8_tail(l, r, 2);
        } else if (c == 0xF0) {
            const int r[] = { 0x90, 0xBF, 0x80, 0xBF, 0x80, 0xBF };
            ok = utf8_tail(l, r, 3);
        } else if (c >= 0xF1 && c <= 0xF3) {
            const int r[] = { 0x80, 0xBF, 0x80, 0xBF, 0x80, 0xBF };
            ok = utf8_tail(l, r, 3);
        } else if (c == 0xF4) {
            const int r[] = { 0x80, 0x8F, 0x80, 0xBF, 0x80, 0xBF };
            ok = utf8_tail(l, r, 3);
        } else {
            ok = 0;
        }
        if (!ok)
            return fail(l, "invalid string: ill-formed UTF-8 byte");
    }
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static enum tok scan_number(lexer_t *l)
{
    int c = l->current;

    if (c == '-') {
        c = get(l);
        if (!is_digit(c))
            return fail(l, "invalid number; expected digit after '-'");
    }
    if (c != '0')
        while (is_digit(c = get(l)))
            ;
    else
        c = get(l);
    if (c == '.') {
        if (!is_digit(get(l)))
            return fail(l, "invalid number; expected digit after '.'");
        while (is_digit(c = get(l)))
            ;
    }
    if (c == 'e' || c == 'E') {
        c = get(l);
        if (c == '+' || c == '-') {
            if (!is_digit(get(l)))
                return fail(l, "invalid number; expected digit after exponent sign");
        } else if (!is_digit(c)) {
            return fail(l, "invalid number; expected '+', '-', or digit after exponent");
        }
        while (is_digit(c = get(l)))
            ;
    }
    unget(l);
    return T_NUMBER;
}

static enum tok scan(lexer_t *l)
{
    if (l->total == 0 && l->n >= 1 && l->s[0] == 0xEF) {
        if (!(l->n >= 3 && l->s[1] == 0xBB && l->s[2] == 0xBF)) {
            get(l);
            return fail(l, "invalid BOM; must be 0xEF 0xBB 0xBF if given");
        }
        l->pos = 3;
    }
    fl_buf_truncate(&l->token, 0);
    if (l->token.p == NULL)
        fl_buf_adds(&l->token, "");
    int c;
    do {
        fl_buf_truncate(&l->token, 0);
        c = get(l);
    } while (c == ' ' || c == '\t' || c == '\n' || c == '\r');

    switch (c) {
    case '[': return T_BEGIN_ARRAY;
    case ']': return T_END_ARRAY;
    case '{': return T_BEGIN_OBJECT;
    case '}': return T_END_OBJECT;
    case ':': return T_NAME_SEP;
    case ',': return T_VALUE_SEP;
    case 't': return scan_literal(l, "true", T_TRUE);
    case 'f': return scan_literal(l, "false", T_FALSE);
    case 'n': return scan_literal(l, "null", T_NULL);
    case '"': return scan_string(l);
    case '-': case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
    case '8': case '9':
        return scan_number(l);
    case 0:
    case -1:
        return T_EOF;
    default:
        return fail(l, "invalid literal");
    }
}

typedef struct parser {
    lexer_t lx;
    enum tok last;
    char *out;
    size_t size;
} parser_t;

static int error_at(parser_t *p, enum tok expected, const char *context)
{
    fl_buf_t m = {0};
    lexer_t *l = &p->lx;

    fl_buf_adds(&m, "syntax error ");
    if (context)
        fl_buf_addf(&m, "while parsing %s ", context);
    fl_buf_adds(&m, "- ");
    if (p->last == T_PARSE_ERROR) {
        fl_buf_addf(&m, "%s; last read: '", l->error);
        for (size_t i = 0; i < l->token.n; i++) {
            unsigned char c = (unsigned char)l->token.p[i];
            if (c <= 0x1F)
                fl_buf_addf(&m, "<U+%04X>", c);
            else
                fl_buf_addc(&m, (char)c);
        }
        fl_buf_addc(&m, '\'');
    } else {
        fl_buf_addf(&m, "unexpected %s", tok_name(p->last));
    }
    if (expected != T_UNINIT)
        fl_buf_addf(&m, "; expected %s", tok_name(expected));
    snprintf(p->out, p->size, "[json.exception.parse_error.101] parse error at line %zu, "
             "column %zu: %s", l->lines + 1, l->col, m.p);
    fl_buf_free(&m);
    return 1;
}

static enum tok next(parser_t *p)
{
    p->last = scan(&p->lx);
    return p->last;
}

/* Parses the value starting at the current token; returns 1 on a syntax error. */
static int parse_value(parser_t *p, int depth)
{
    if (depth > 10000)
        return 0; /* nlohmann has no limit; do not recurse forever */
    switch (p->last) {
    case T_BEGIN_OBJECT:
        if (next(p) == T_END_OBJECT)
            return 0;
        for (;;) {
            if (p->last != T_STRING)
                return error_at(p, T_STRING, "object key");
            if (next(p) != T_NAME_SEP)
                return error_at(p, T_NAME_SEP, "object separator");
            next(p);
            if (parse_value(p, depth + 1))
                return 1;
            next(p);
            if (p->last == T_VALUE_SEP) {
                next(p);
                continue;
            }
            if (p->last == T_END_OBJECT)
                return 0;
            return error_at(p, T_END_OBJECT, "object");
        }
    case T_BEGIN_ARRAY:
        if (next(p) == T_END_ARRAY)
            return 0;
        for (;;) {
            if (parse_value(p, depth + 1))
                return 1;
            next(p);
            if (p->last == T_VALUE_SEP) {
                next(p);
                continue;
            }
            if (p->last == T_END_ARRAY)
                return 0;
            return error_at(p, T_END_ARRAY, "array");
        }
    case T_TRUE:
    case T_FALSE:
    case T_NULL:
    case T_STRING:
    case T_NUMBER:
        return 0;
    case T_PARSE_ERROR:
        return error_at(p, T_UNINIT, "value");
    case T_EOF:
        if (p->lx.total == 1) {
            snprintf(p->out, p->size,
                     "[json.exception.parse_error.101] parse error at line %zu, column %zu: "
                     "attempting to parse an empty input; check that your input string or "
                     "stream contains the expected JSON", p->lx.lines + 1, p->lx.col);
            return 1;
        }
        return error_at(p, T_LIT_OR_VALUE, "value");
    default:
        return error_at(p, T_LIT_OR_VALUE, "value");
    }
}

int fl_nlohmann_error(const char *s, size_t n, char *out, size_t size)
{
    parser_t p = { .lx = { .s = (const unsigned char *)s, .n = n, .current = -1 },
                   .out = out, .size = size };
    int rc;

    next(&p);
    rc = parse_value(&p, 0);
    if (!rc && next(&p) != T_EOF)
        rc = error_at(&p, T_EOF, "value");
    fl_buf_free(&p.lx.token);
    return rc;
}
