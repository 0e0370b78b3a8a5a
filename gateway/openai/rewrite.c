/* rewrite.c - splice the client's model name into backend JSON. */
#include "openai/rewrite.h"

#include <string.h>

#include "core/jspan.h"

static int key_is(const char *p, const gw_jspan_t *m, const char *key, size_t klen)
{
    /* raw key bytes, as gw_json_member compares them; the key ends before the value */
    return m->mem_off + 1 + klen < m->val_off && p[m->mem_off + 1 + klen] == '"' &&
           memcmp(p + m->mem_off + 1, key, klen) == 0;
}

int gw_oai_rewrite(const char *json, size_t len, const char *model, size_t model_len,
                   gw_buf_t *out, int *has_error)
{
    gw_jspan_t m, v;
    size_t it = 0;
    int have_model = 0, rc;

    if (has_error)
        *has_error = 0;
    /* one walk: the first `model` member and any `error` member, each as found before
     * the end of the object or the first malformed byte (what gw_json_member reports) */
    while ((rc = gw_json_object_next(json, len, 0, &it, &m)) == 1) {
        if (!have_model && key_is(json, &m, "model", 5)) {
            v = m;
            have_model = 1;
        } else if (has_error && !*has_error && key_is(json, &m, "error", 5)) {
            *has_error = 1;
        }
        if (have_model && (has_error == NULL || *has_error))
            break;
    }
    if (model == NULL || !have_model || !gw_json_span_is_string(json, &v))
        return gw_buf_add(out, json, len) == GW_OK ? 0 : -1;
    if (gw_buf_add(out, json, v.val_off) != GW_OK ||
        gw_buf_add_json_str(out, model, model_len) != GW_OK ||
        gw_buf_add(out, json + v.val_off + v.val_len, len - v.val_off - v.val_len) != GW_OK)
        return -1;
    return 1;
}

int gw_oai_set_model(const char *json, size_t len, const char *model, size_t model_len,
                     gw_buf_t *out)
{
    return gw_oai_rewrite(json, len, model, model_len, out, NULL);
}
