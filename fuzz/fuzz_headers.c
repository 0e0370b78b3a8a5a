/*
 * fuzz_headers.c - libFuzzer target for what the gateway does with raw request header
 * values before any routing: API key extraction (http/auth.c gw_auth_extract), the
 * CORS origin check (http/cors.c gw_cors_allowed), log-line escaping (core/log.c
 * gw_log_safe), UTF-8 repair of error-message text (core/text.c) and the /upstream
 * dot-segment check (http/guard.c gw_guard_dot_segment).
 *
 * Input: up to three NUL-separated header values (Authorization, x-api-key, Origin);
 * an absent part means an absent header. Properties: a found key lies inside one of
 * the values, is 1..GW_AUTH_KEY_MAX bytes without blanks or control characters; an
 * allowed origin is printable ASCII; escaped log text is printable ASCII without '"'
 * or '\\', NUL-terminated within its buffer.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/log.h"
#include "core/text.h"
#include "http/guard.h"
#include "http/auth.h"
#include "http/cors.h"

static gw_conf_t *conf;
static gw_cors_t *cors;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char json[] = "{\"models\": {\"q\": {\"upstream\": \"http://h\"}},"
                               " \"cors\": {\"origins\": [\"http://webui.lan:3000\"]}}";

    (void)argc;
    (void)argv;
    if (gw_conf_load_text(json, sizeof(json) - 1, &conf, NULL) != GW_OK)
        abort();
    cors = gw_cors_new(conf);
    return 0;
}

static void check_log_safe(const char *s, size_t n)
{
    static const size_t caps[] = {1, 2, 4, 5, 8, 33, 256};
    char out[256];
    size_t k, i, len;

    for (k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
        memset(out, 'Z', sizeof(out));
        gw_log_safe(out, caps[k], s, n);
        len = strnlen(out, caps[k]);
        if (len >= caps[k])
            abort(); /* not terminated inside the buffer */
        for (i = 0; i < len; i++)
            if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] >= 0x7f || out[i] == '"')
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), *parts[3] = {NULL, NULL, NULL}, *p, *end;
    const char *key = NULL;
    size_t len = 0, i;
    int n = 0;
    gw_auth_cred_t cred;

    memcpy(buf, data, size);
    buf[size] = '\0';
    end = buf + size;
    for (p = buf; n < 3 && p <= end; n++) {
        parts[n] = p;
        p += strlen(p) + 1;
    }
    /* an empty first byte means "no Authorization header" and so on */
    for (i = 0; i < 3; i++)
        if (parts[i] && parts[i][0] == '\x01')
            parts[i] = NULL;

    cred = gw_auth_extract(parts[0], parts[1], &key, &len);
    if (cred == GW_AUTH_FOUND) {
        int inside = 0;

        for (i = 0; i < 2; i++)
            if (parts[i] && key >= parts[i] && key + len <= parts[i] + strlen(parts[i]))
                inside = 1;
        if (!inside || len == 0 || len > GW_AUTH_KEY_MAX)
            abort();
        for (i = 0; i < len; i++)
            if ((unsigned char)key[i] <= 0x20 || (unsigned char)key[i] == 0x7f)
                abort();
    } else if (cred != GW_AUTH_NONE && cred != GW_AUTH_MALFORMED) {
        abort();
    } else if (cred == GW_AUTH_NONE && (parts[0] || parts[1])) {
        abort();
    }

    if (gw_cors_allowed(cors, parts[2])) {
        for (p = parts[2]; *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                abort();
    }
    check_log_safe((const char *)data, size);

    /* UTF-8 repair keeps the length and leaves text jansson accepts */
    {
        size_t n0 = strlen(buf);
        json_t *js;

        gw_text_utf8_fix(buf);
        if (strlen(buf) != n0)
            abort();
        js = json_string(buf);
        if (js == NULL)
            abort();
        json_decref(js);
    }
    (void)gw_guard_dot_segment((const char *)data, size);
    free(buf);
    return 0;
}
