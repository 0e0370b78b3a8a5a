/*
 * tok_reference.c - the tree-based token-ID request rewrite the gateway used before it
 * spliced the client's bytes (json_dumps of an edited copy of the parsed body). Kept as the
 * semantic reference of tests/unit/check_tokids.c and fuzz/fuzz_tokreq.c: the spliced body
 * must parse to the same value.
 */
#include "tok_reference.h"

#include <stdlib.h>
#include <string.h>

char *gw_test_tok_tree_body(json_t *root, const gw_tok_req_t *tr, const gw_vocab_t *vocab)
{
    json_t *b = json_deep_copy(root), *stop, *so;
    size_t i, j;
    char *s;

    json_object_del(b, "return_token_ids");
    json_object_del(b, "stop_token_ids");
    if (tr->n_stop_ids > 0 || json_object_get(b, "stop")) {
        json_t *old = json_object_get(b, "stop"), *x, *y;

        stop = json_array();
        if (json_is_string(old)) {
            if (json_string_length(old) > 0)
                json_array_append(stop, old);
        } else if (json_is_array(old)) {
            json_array_foreach(old, i, x)
            {
                if (!json_is_string(x) || json_string_length(x) == 0)
                    continue;
                json_array_foreach(stop, j, y)
                {
                    if (json_equal(x, y))
                        break;
                }
                if (j == json_array_size(stop))
                    json_array_append(stop, x);
            }
        }
        for (i = 0; i < tr->n_stop_ids; i++) {
            size_t len;
            const char *p = gw_vocab_piece(vocab, tr->stop_ids[i], &len);

            if (p == NULL || len == 0)
                continue;
            json_array_foreach(stop, j, y)
            {
                if (json_string_length(y) == len && memcmp(json_string_value(y), p, len) == 0)
                    break;
            }
            if (j == json_array_size(stop)) {
                json_t *str = json_stringn(p, len);

                if (str)
                    json_array_append_new(stop, str);
            }
        }
        if (json_array_size(stop) > 0)
            json_object_set_new(b, "stop", stop);
        else {
            json_decref(stop);
            json_object_del(b, "stop");
        }
    }
    if (tr->chat) {
        if (!tr->tools_stream) {
            json_object_set_new(b, "logprobs", json_true());
            if (!tr->client_logprobs || tr->client_top_zero)
                json_object_set_new(b, "top_logprobs", json_integer(1));
        }
    } else if (!tr->client_logprobs) {
        json_object_set_new(b, "logprobs", json_integer(1));
    }
    json_object_set_new(b, "verbose", json_true());
    if (tr->stream) {
        json_object_set_new(b, "timings_per_token", json_true());
        if (tr->chat) {
            so = json_object_get(b, "stream_options");
            if (!json_is_object(so)) {
                so = json_object();
                json_object_set_new(b, "stream_options", so);
            }
            json_object_set_new(so, "include_usage", json_true());
        }
    } else {
        json_object_set_new(b, "return_tokens", json_true());
    }
    s = json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(b);
    return s;
}
