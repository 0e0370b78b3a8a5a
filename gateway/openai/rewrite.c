/* rewrite.c - splice the client's model name into backend JSON. */
#include "openai/rewrite.h"

#include "core/jspan.h"

int gw_oai_set_model(const char *json, size_t len, const char *model, size_t model_len,
                     gw_buf_t *out)
{
    gw_jspan_t v;

    if (gw_json_member(json, len, 0, "model", &v) != 1 || !gw_json_span_is_string(json, &v)) {
        return gw_buf_add(out, json, len) == GW_OK ? 0 : -1;
    }
    if (gw_buf_add(out, json, v.val_off) != GW_OK ||
        gw_buf_add_json_str(out, model, model_len) != GW_OK ||
        gw_buf_add(out, json + v.val_off + v.val_len, len - v.val_off - v.val_len) != GW_OK)
        return -1;
    return 1;
}
