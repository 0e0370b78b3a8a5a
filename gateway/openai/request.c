/*
 * request.c - OpenAI request validation: the rule tables, the tree path (gw_oai_parse)
 * and the fast path over the bytes (gw_oai_check).
 */
#include "openai/request.h"

#include <string.h>

#include "core/jcheck.h"
#include "core/jspan.h"

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

/* The table for an endpoint, NULL when only `model` is checked. */
static const field_rule_t *rules_for(gw_oai_kind_t kind)
{
    switch (kind) {
    case GW_OAI_CHAT:
        return chat_rules;
    case GW_OAI_COMPLETIONS:
        return completion_rules;
    case GW_OAI_EMBEDDINGS:
        return embedding_rules;
    default:
        return NULL;
    }
}

/* ================================================================ tree path == */

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
    const char *nul;
    gw_err_t rc;

    *root = NULL;
    if (len == 0)
        return gw_errf(err, GW_EBADJSON, "", "request body is empty: expected a JSON object");
    nul = memchr(body, '\0', len);
    if (nul != NULL) {
        /* never valid JSON, but jansson 2.14 skips one right after a number or a literal
         * ("[5\0]" loads), and the rest of the gateway and llama-server must not see it */
        size_t off = (size_t)(nul - body), line = 1, line_start = 0, i;

        for (i = 0; i < off; i++)
            if (body[i] == '\n') {
                line++;
                line_start = i + 1;
            }
        return gw_errf(err, GW_EBADJSON, "",
                       "invalid JSON in request body at line %zu column %zu (byte %zu): "
                       "NUL byte",
                       line, off - line_start, off);
    }
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
    rc = rules_for(kind) ? check_rules(r, rules_for(kind), err) : GW_OK;
out:
    if (rc != GW_OK)
        json_decref(r);
    else
        *root = r;
    return rc;
}

/* ================================================================ fast path == */

/* Room for the rules of the largest table; checked at compile time. */
#define MAX_RULES 24
_Static_assert(sizeof(chat_rules) / sizeof(chat_rules[0]) <= MAX_RULES &&
                   sizeof(completion_rules) / sizeof(completion_rules[0]) <= MAX_RULES &&
                   sizeof(embedding_rules) / sizeof(embedding_rules[0]) <= MAX_RULES,
               "MAX_RULES is too small for a rule table");

/* Decoded keys longer than this cannot be a name we look for (the longest is 21). */
#define KEY_MAX 64

#define ABSENT (-1)

static unsigned jtype_bit(gw_jtype_t t)
{
    switch (t) {
    case GW_JT_STRING:
        return T_STR;
    case GW_JT_INTEGER:
        return T_INT | T_NUM;
    case GW_JT_REAL:
        return T_NUM;
    case GW_JT_TRUE:
    case GW_JT_FALSE:
        return T_BOOL;
    case GW_JT_ARRAY:
        return T_ARR;
    case GW_JT_OBJECT:
        return T_OBJ;
    default:
        return T_NULL;
    }
}

/* The checked key k (kl bytes, never a NUL: jcheck refuses \u0000) is the name. */
static int key_is(const char *k, size_t kl, const char *name)
{
    size_t i;

    for (i = 0; i < kl; i++)
        if (k[i] != name[i]) /* also stops at name's NUL */
            return 0;
    return name[kl] == '\0';
}

/* The validated array at v holds only strings (check_rules's `stop[i]` rule). */
static int all_strings(const char *body, const gw_jmember_t *v)
{
    gw_jspan_t el;
    size_t it = 0;
    int rc;

    while ((rc = gw_json_array_next(body + v->val_off, v->val_len, 0, &it, &el)) == 1)
        if (body[v->val_off + el.val_off] != '"')
            return 0;
    return rc == 0;
}

int gw_oai_check(const char *body, size_t len, gw_oai_kind_t kind, unsigned max_depth,
                 gw_oai_fast_t *out)
{
    const field_rule_t *rules = rules_for(kind), *r;
    int tokids = kind == GW_OAI_CHAT || kind == GW_OAI_COMPLETIONS;
    int last[MAX_RULES]; /* the type of each rule's last member, or ABSENT */
    int have_model = 0, have_stop = 0, stream = 0, rc;
    gw_jmember_t m, model, stop;
    gw_jcheck_obj_t it;
    char kbuf[KEY_MAX];
    size_t n;

    for (n = 0; n < MAX_RULES; n++)
        last[n] = ABSENT;
    memset(&model, 0, sizeof(model));
    memset(&stop, 0, sizeof(stop));
    gw_jcheck_obj_init(&it, 0, max_depth);
    while ((rc = gw_jcheck_obj_next(body, len, &it, &m)) == 1) {
        const char *k = body + m.key_off;
        size_t kl = m.key_len;

        if (m.key_escaped) {
            kl = gw_jcheck_unescape(k, kl, kbuf, sizeof(kbuf));
            if (kl == (size_t)-1)
                continue; /* longer than every name below */
            k = kbuf;
        }
        if (key_is(k, kl, "model")) {
            model = m;
            have_model = 1;
        } else if (key_is(k, kl, "stream")) {
            stream = m.type == GW_JT_TRUE;
        } else if (key_is(k, kl, "stop")) {
            stop = m;
            have_stop = 1;
        } else if (tokids &&
                   (key_is(k, kl, "stop_token_ids") || key_is(k, kl, "return_token_ids"))) {
            return 0;
        }
        for (r = rules; r && r->name; r++)
            if (key_is(k, kl, r->name))
                last[r - rules] = (int)m.type;
    }
    if (rc < 0 || !gw_jcheck_rest_ws(body, len, it.pos))
        return 0;
    if (!have_model || model.type != GW_JT_STRING ||
        memchr(body + model.val_off, '\\', model.val_len) != NULL)
        return 0;
    for (r = rules; r && r->name; r++) {
        int t = last[r - rules];

        if (t == ABSENT ? r->required : (jtype_bit((gw_jtype_t)t) & r->types) == 0)
            return 0;
    }
    if (rules && rules != embedding_rules && have_stop && stop.type == GW_JT_ARRAY &&
        !all_strings(body, &stop))
        return 0;
    out->model = body + model.val_off + 1;
    out->model_len = model.val_len - 2;
    out->stream = stream;
    return 1;
}
