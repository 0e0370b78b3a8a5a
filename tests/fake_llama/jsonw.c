/*
 * jsonw.c - nlohmann-style JSON serialisation of jansson values (see jsonw.h).
 */
#include "jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_string(fl_buf_t *out, const char *s, size_t n)
{
    fl_buf_t clean = {0};
    const char *p = s;

    if (!fl_utf8_valid(s, n, 0)) {
        fl_utf8_sanitize(&clean, s, n);
        p = clean.p;
        n = clean.n;
    }
    fl_buf_addc(out, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        const char *esc = NULL;
        char tmp[8];

        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                snprintf(tmp, sizeof(tmp), "\\u%04x", c);
                esc = tmp;
            }
        }
        if (esc) {
            fl_buf_add(out, p + run, i - run);
            fl_buf_adds(out, esc);
            run = i + 1;
        }
    }
    fl_buf_add(out, p + run, n - run);
    fl_buf_addc(out, '"');
    fl_buf_free(&clean);
}

/*
 * nlohmann::detail::to_chars(): the shortest digits that round-trip, printed in fixed
 * notation when the decimal point falls within (-4, 15], else as d.ddde+XX.
 */
static void write_real(fl_buf_t *out, double d)
{
    char tmp[64];
    char digits[32];
    int nd = 0;
    int e10 = 0;

    if (!isfinite(d)) {
        fl_buf_adds(out, "null");
        return;
    }
    if (d == 0.0) {
        fl_buf_adds(out, signbit(d) ? "-0.0" : "0.0");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    /* tmp is [-]d[.ddd]e[+-]XX */
    const char *p = tmp;
    if (*p == '-') {
        fl_buf_addc(out, '-');
        p++;
    }
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            digits[nd++] = *p;
    if (*p == 'e')
        e10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;

    int n = e10 + 1; /* position of the decimal point relative to the digits */
    if (nd <= n && n <= 15) {
        fl_buf_add(out, digits, (size_t)nd);
        for (int i = nd; i < n; i++)
            fl_buf_addc(out, '0');
        fl_buf_adds(out, ".0");
    } else if (0 < n && n <= 15) {
        fl_buf_add(out, digits, (size_t)n);
        fl_buf_addc(out, '.');
        fl_buf_add(out, digits + n, (size_t)(nd - n));
    } else if (-4 < n && n <= 0) {
        fl_buf_adds(out, "0.");
        for (int i = n; i < 0; i++)
            fl_buf_addc(out, '0');
        fl_buf_add(out, digits, (size_t)nd);
    } else {
        fl_buf_addc(out, digits[0]);
        if (nd > 1) {
            fl_buf_addc(out, '.');
            fl_buf_add(out, digits + 1, (size_t)(nd - 1));
        }
        int x = n - 1;
        fl_buf_addf(out, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
    }
}

void fl_json_write(fl_buf_t *out, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *val;
        int first = 1;
        fl_buf_addc(out, '{');
        json_object_foreach((json_t *)v, key, val) {
            if (!first)
                fl_buf_addc(out, ',');
            first = 0;
            write_string(out, key, strlen(key));
            fl_buf_addc(out, ':');
            fl_json_write(out, val);
        }
        fl_buf_addc(out, '}');
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *val;
        fl_buf_addc(out, '[');
        json_array_foreach(v, i, val) {
            if (i)
                fl_buf_addc(out, ',');
            fl_json_write(out, val);
        }
        fl_buf_addc(out, ']');
        break;
    }
    case JSON_STRING:
        write_string(out, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        fl_buf_addf(out, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        write_real(out, json_real_value(v));
        break;
    case JSON_TRUE:
        fl_buf_adds(out, "true");
        break;
    case JSON_FALSE:
        fl_buf_adds(out, "false");
        break;
    case JSON_NULL:
    default:
        fl_buf_adds(out, "null");
        break;
    }
}

char *fl_json_dumps(const json_t *v, size_t *len)
{
    fl_buf_t b = {0};

    fl_json_write(&b, v);
    return fl_buf_take(&b, len);
}

json_t *fl_json_bytes(const char *s, size_t n)
{
    return json_stringn_nocheck(s, n);
}

json_t *fl_json_f32(float f)
{
    return json_real((double)f);
}
