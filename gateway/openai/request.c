/* request.c - OpenAI request validation tables. */
#include "openai/request.h"

#include <string.h>

/* Allowed JSON types, as a bit set. */
enum {
    T_STR = 1 << 0,
    T_INT = 1 << 1,
    T_NUM = 1 << 2, /* integer or real */
    T_BOOL = 1 << 3,
    T_ARR = 1 << 4,
    T_OBJ = 1 << 5,
    T_NULL = 1 << 6,
};

typedef struct field_rule {
    const char *name;
    unsigned types;
    int required;
    const char *expect; /* wording for the message */
} field_rule_t;

static const field_rule_t chat_rules[] = {
    {"messages", T_ARR, 1, "an array of messages"},
    {"stream", T_BOOL | T_NULL, 0, "a boolean"},
    {"stream_options", T_OBJ | T_NULL, 0, "an object"},
    {"max_tokens", T_INT | T_NULL, 0, "an integer"},
    {"max_completion_tokens", T_INT | T_NULL, 0, "an integer"},
    {"n", T_INT | T_NULL, 0, "an integer"},
    {"temperature", T_NUM | T_NULL, 0, "a number"},
    {"top_p", T_NUM | T_NULL, 0, "a number"},
    {"presence_penalty", T_NUM | T_NULL, 0, "a number"},
    {"frequency_penalty", T_NUM | T_NULL, 0, "a number"},
    {"seed", T_INT | T_NULL, 0, "an integer"},
    {"stop", T_STR | T_ARR | T_NULL, 0, "a string or an array of strings"},
    {"logprobs", T_BOOL | T_NULL, 0, "a boolean"},
    {"top_logprobs", T_INT | T_NULL, 0, "an integer"},
    {"tools", T_ARR | T_NULL, 0, "an array"},
    {"response_format", T_OBJ | T_NULL, 0, "an object"},
    {"logit_bias", T_OBJ | T_ARR | T_NULL, 0, "an object"},
    {"user", T_STR | T_NULL, 0, "a string"},
    {NULL, 0, 0, NULL},
};

static const field_rule_t completion_rules[] = {
    {"prompt", T_STR | T_ARR, 1, "a string or an array"},
    {"stream", T_BOOL | T_NULL, 0, "a boolean"},
    {"stream_options", T_OBJ | T_NULL, 0, "an object"},
    {"max_tokens", T_INT | T_NULL, 0, "an integer"},
    {"n", T_INT | T_NULL, 0, "an integer"},
    {"temperature", T_NUM | T_NULL, 0, "a number"},
    {"top_p", T_NUM | T_NULL, 0, "a number"},
    {"presence_penalty", T_NUM | T_NULL, 0, "a number"},
    {"frequency_penalty", T_NUM | T_NULL, 0, "a number"},
    {"seed", T_INT | T_NULL, 0, "an integer"},
    {"stop", T_STR | T_ARR | T_NULL, 0, "a string or an array of strings"},
    {"logprobs", T_INT | T_BOOL | T_NULL, 0, "an integer"},
    {"echo", T_BOOL | T_NULL, 0, "a boolean"},
    {"suffix", T_STR | T_NULL, 0, "a string"},
    {"user", T_STR | T_NULL, 0, "a string"},
    {NULL, 0, 0, NULL},
};

static const field_rule_t embedding_rules[] = {
    {"input", T_STR | T_ARR, 1, "a string or an array"},
    {"encoding_format", T_STR | T_NULL, 0, "a string"},
    {"dimensions", T_INT | T_NULL, 0, "an integer"},
    {"user", T_STR | T_NULL, 0, "a string"},
    {NULL, 0, 0, NULL},
};

static unsigned type_bit(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return T_STR;
    case JSON_INTEGER:
        return T_INT | T_NUM;
    case JSON_REAL:
        return T_NUM;
    case JSON_TRUE:
    case JSON_FALSE:
        return T_BOOL;
    case JSON_ARRAY:
        return T_ARR;
    case JSON_OBJECT:
        return T_OBJ;
    default:
        return T_NULL;
    }
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_ARRAY:
        return "an array";
    case JSON_OBJECT:
        return "an object";
    default:
        return "null";
    }
}

static gw_err_t check_rules(json_t *root, const field_rule_t *rules, gw_errbuf_t *err)
{
    const field_rule_t *r;

    for (r = rules; r->name; r++) {
        json_t *v = json_object_get(root, r->name);

        if (v == NULL) {
            if (r->required)
                return gw_errf(err, GW_EBADREQ, r->name, "'%s' is required", r->name);
            continue;
        }
        if ((type_bit(v) & r->types) == 0)
            return gw_errf(err, GW_EPARAM, r->name, "'%s' must be %s, got %s", r->name,
                           r->expect, type_name(v));
    }
    /* stop: every array entry must be a string */
    {
        json_t *stop = json_object_get(root, "stop"), *s;
        size_t i;

        if (json_is_array(stop) && rules != embedding_rules) {
            json_array_foreach(stop, i, s)
            {
                if (!json_is_string(s))
                    return gw_errf(err, GW_EPARAM, "stop",
                                   "'stop[%zu]' must be a string, got %s", i, type_name(s));
            }
        }
    }
    return GW_OK;
}

gw_err_t gw_oai_parse(const char *body, size_t len, gw_oai_kind_t kind, json_t **root,
                      gw_errbuf_t *err)
{
    json_error_t je;
    json_t *r = NULL, *model;
    gw_err_t rc;

    *root = NULL;
    if (len == 0)
        return gw_errf(err, GW_EBADJSON, "", "request body is empty: expected a JSON object");
    r = json_loadb(body, len, JSON_DECODE_ANY, &je);
    if (r == NULL)
        return gw_errf(err, GW_EBADJSON, "",
                       "invalid JSON in request body at line %d column %d (byte %d): %s",
                       je.line, je.column, je.position, je.text);
    if (!json_is_object(r)) {
        rc = gw_errf(err, GW_EBADREQ, "", "request body must be a JSON object, got %s",
                     type_name(r));
        goto out;
    }
    model = json_object_get(r, "model");
    if (model == NULL) {
        rc = gw_errf(err, GW_EBADREQ, "model", "you must provide a model parameter");
        goto out;
    }
    if (!json_is_string(model)) {
        rc = gw_errf(err, GW_EPARAM, "model", "'model' must be a string, got %s",
                     type_name(model));
        goto out;
    }
    switch (kind) {
    case GW_OAI_CHAT:
        rc = check_rules(r, chat_rules, err);
        break;
    case GW_OAI_COMPLETIONS:
        rc = check_rules(r, completion_rules, err);
        break;
    case GW_OAI_EMBEDDINGS:
        rc = check_rules(r, embedding_rules, err);
        break;
    default:
        rc = GW_OK;
        break;
    }
out:
    if (rc != GW_OK)
        json_decref(r);
    else
        *root = r;
    return rc;
}
