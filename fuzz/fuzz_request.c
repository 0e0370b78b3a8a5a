/*
 * fuzz_request.c - libFuzzer target for the request path that sees client and backend
 * JSON: the depth guard and structural scanner (core/jspan.c), the strict checker
 * (core/jcheck.c), request validation (openai/request.c gw_oai_check and gw_oai_parse)
 * and the model rewrite (openai/rewrite.c gw_oai_set_model).
 *
 * Input: byte 0 picks the endpoint kind, the rest is the body. As the gateway does,
 * gw_oai_parse only runs on a body that passes gw_json_depth_ok. Properties:
 *   1. gw_oai_parse returns GW_OK with an object that has a string "model", or an
 *      error with a message; never both, never a leak.
 *   1a. differential: when gw_oai_check says yes, gw_oai_parse says GW_OK and its tree
 *      has the same model bytes and stream verdict; when gw_jcheck_text accepts a body,
 *      json_loadb(JSON_DECODE_ANY) accepts it too. A disagreement aborts.
 *   2. gw_oai_set_model either copies the input byte for byte (0) or splices (1); when
 *      it splices and the input is valid JSON (no duplicate keys), the output is valid
 *      JSON equal to the input with "model" replaced; the scanner never reads past len.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/jcheck.h"
#include "core/jspan.h"
#include "openai/request.h"
#include "openai/rewrite.h"

#define NEW_MODEL "fuzz/\"model\"\n"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    json_object_seed(1); /* deterministic hashing for reproducible runs */
    return 0;
}

static void check_parse(const char *body, size_t len, gw_oai_kind_t kind)
{
    gw_errbuf_t err;
    gw_oai_fast_t fast;
    json_t *root = (json_t *)1, *model;
    gw_err_t rc;
    int f;

    memset(&err, 0, sizeof(err));
    f = gw_oai_check(body, len, kind, GW_JCHECK_MAX_DEPTH, &fast);
    rc = gw_oai_parse(body, len, kind, &root, &err);
    if (f != 0 && f != 1)
        abort();
    if (rc == GW_OK) {
        if (root == NULL || !json_is_object(root) ||
            !json_is_string(json_object_get(root, "model")))
            abort();
        if (f) {
            model = json_object_get(root, "model");
            if (fast.model < body || fast.model_len > len ||
                fast.model_len != json_string_length(model) ||
                memcmp(fast.model, json_string_value(model), fast.model_len) != 0 ||
                fast.stream != json_is_true(json_object_get(root, "stream")))
                abort();
        }
        json_decref(root);
    } else if (root != NULL || err.msg[0] == '\0' || f) {
        abort();
    }
    /* with the server's depth limit the fast path never takes what the depth guard refuses */
    if (gw_oai_check(body, len, kind, 8, &fast) == 1 && !gw_json_depth_ok(body, len, 8))
        abort();
}

/* The checker alone: never accepts what jansson rejects. */
static void check_jcheck(const char *body, size_t len)
{
    json_error_t je;
    json_t *v;

    if (!gw_jcheck_text(body, len, GW_JCHECK_MAX_DEPTH, NULL))
        return;
    v = json_loadb(body, len, JSON_DECODE_ANY, &je);
    if (v == NULL)
        abort();
    json_decref(v);
}

static void check_set_model(const char *body, size_t len)
{
    gw_buf_t out;
    json_error_t je;
    json_t *in, *got;
    int rc;

    gw_buf_init(&out, len + 4096);
    rc = gw_oai_set_model(body, len, NEW_MODEL, strlen(NEW_MODEL), &out);
    if (rc < 0)
        abort(); /* the ceiling leaves room for any model name */
    if (rc == 0) {
        if (out.len != len || (len && memcmp(out.ptr, body, len) != 0))
            abort();
    } else {
        in = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
        if (in != NULL && json_is_object(in)) {
            if (!json_is_string(json_object_get(in, "model")))
                abort();
            got = json_loadb(out.ptr, out.len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
            if (got == NULL)
                abort();
            json_object_set_new(in, "model", json_string(NEW_MODEL));
            if (!json_equal(in, got))
                abort();
            json_decref(got);
        }
        json_decref(in);
    }
    gw_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body;
    size_t len, it, end;
    gw_jspan_t sp;
    char *copy;

    if (size < 1)
        return 0;
    body = (const char *)data + 1;
    len = size - 1;
    /* an exact-size copy, so that ASan sees any read past len */
    copy = malloc(len ? len : 1);
    if (len)
        memcpy(copy, body, len);

    if (gw_json_depth_ok(copy, len, 64))
        check_parse(copy, len, (gw_oai_kind_t)(data[0] % 4));
    check_jcheck(copy, len);
    check_set_model(copy, len);

    /* the scanner on its own: skip, member lookups, array walk */
    end = gw_json_skip(copy, len, 0);
    if (end != (size_t)-1 && end > len)
        abort();
    if (gw_json_member(copy, len, 0, "error", &sp) == 1 &&
        (sp.val_off > len || sp.val_len > len - sp.val_off))
        abort();
    it = 0;
    for (int i = 0; i < 10000 && gw_json_array_next(copy, len, 0, &it, &sp) == 1; i++)
        if (sp.val_off > len || sp.val_len > len - sp.val_off)
            abort();
    free(copy);
    return 0;
}
