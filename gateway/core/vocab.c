/* vocab.c - piece table with a hash index for exact-piece lookups and unique splits. */
#include "core/vocab.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

#define GW_VOCAB_MAX_SPLIT 64

struct gw_vocab {
    atomic_int refs;
    size_t n;
    char *blob;
    size_t *off;     /* n + 1 offsets into blob */
    uint32_t *head;  /* hash bucket -> id + 1 (0 = empty) */
    uint32_t *next;  /* id -> next id + 1 in the same bucket */
    size_t mask;
    size_t max_len;  /* longest piece */
};

static uint64_t hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static gw_vocab_t *build(char *blob, size_t *off, size_t n)
{
    gw_vocab_t *v = gw_xcalloc(1, sizeof(*v));
    size_t cap = 16, i;

    while (cap < n * 2)
        cap *= 2;
    atomic_init(&v->refs, 1);
    v->n = n;
    v->blob = blob;
    v->off = off;
    v->mask = cap - 1;
    v->head = gw_xcalloc(cap, sizeof(uint32_t));
    v->next = gw_xcalloc(n ? n : 1, sizeof(uint32_t));
    for (i = 0; i < n; i++) {
        size_t len = off[i + 1] - off[i];
        size_t b = (size_t)hash(blob + off[i], len) & v->mask;

        if (len > v->max_len)
            v->max_len = len;
        v->next[i] = v->head[b];
        v->head[b] = (uint32_t)i + 1;
    }
    return v;
}

gw_vocab_t *gw_vocab_from_pieces(const char *const *pieces, const size_t *lens, size_t n)
{
    size_t total = 0, i, pos = 0;
    char *blob;
    size_t *off = gw_xmalloc((n + 1) * sizeof(size_t));

    for (i = 0; i < n; i++)
        total += lens[i];
    blob = gw_xmalloc(total + 1);
    for (i = 0; i < n; i++) {
        off[i] = pos;
        memcpy(blob + pos, pieces[i], lens[i]);
        pos += lens[i];
    }
    off[n] = pos;
    return build(blob, off, n);
}

gw_vocab_t *gw_vocab_from_json(const char *json, size_t len, size_t n, gw_errbuf_t *err)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, &je), *toks, *t;
    char **pieces = NULL;
    size_t *lens = NULL, i, k;
    gw_vocab_t *v = NULL;

    if (root == NULL) {
        gw_errf(err, GW_EUPSTREAM, "", "tokenizer answer is not JSON: %s", je.text);
        return NULL;
    }
    toks = json_object_get(root, "tokens");
    if (!json_is_array(toks) || json_array_size(toks) != n) {
        gw_errf(err, GW_EUPSTREAM, "", "tokenizer answer has %zu pieces, expected %zu",
                json_is_array(toks) ? json_array_size(toks) : 0, n);
        goto out;
    }
    pieces = gw_xcalloc(n ? n : 1, sizeof(char *));
    lens = gw_xcalloc(n ? n : 1, sizeof(size_t));
    json_array_foreach(toks, i, t)
    {
        json_t *id = json_object_get(t, "id"), *pc = json_object_get(t, "piece");
        json_int_t idv = json_integer_value(id);

        if (!json_is_integer(id) || idv < 0 || (size_t)idv >= n || pieces[idv] != NULL) {
            gw_errf(err, GW_EUPSTREAM, "", "tokenizer answer: bad id at %zu", i);
            goto out;
        }
        if (json_is_string(pc)) {
            lens[idv] = json_string_length(pc);
            pieces[idv] = gw_xstrndup(json_string_value(pc), lens[idv]);
        } else if (json_is_array(pc)) {
            json_t *b;

            lens[idv] = json_array_size(pc);
            pieces[idv] = gw_xmalloc(lens[idv] + 1);
            json_array_foreach(pc, k, b) pieces[idv][k] = (char)json_integer_value(b);
        } else {
            gw_errf(err, GW_EUPSTREAM, "", "tokenizer answer: bad piece for id %lld",
                    (long long)idv);
            goto out;
        }
    }
    v = gw_vocab_from_pieces((const char *const *)pieces, lens, n);
out:
    if (pieces)
        for (i = 0; i < n; i++)
            free(pieces[i]);
    free(pieces);
    free(lens);
    json_decref(root);
    return v;
}

void gw_vocab_ref(gw_vocab_t *v)
{
    atomic_fetch_add(&v->refs, 1);
}

void gw_vocab_unref(gw_vocab_t *v)
{
    if (v == NULL || atomic_fetch_sub(&v->refs, 1) != 1)
        return;
    free(v->blob);
    free(v->off);
    free(v->head);
    free(v->next);
    free(v);
}

size_t gw_vocab_size(const gw_vocab_t *v)
{
    return v->n;
}

const char *gw_vocab_piece(const gw_vocab_t *v, int64_t id, size_t *len)
{
    if (id < 0 || (uint64_t)id >= v->n)
        return NULL;
    *len = v->off[id + 1] - v->off[id];
    return v->blob + v->off[id];
}

int gw_vocab_count_exact(const gw_vocab_t *v, const char *p, size_t len, int32_t *first)
{
    uint32_t e = v->head[(size_t)hash(p, len) & v->mask];
    int c = 0;

    while (e && c < 2) {
        uint32_t id = e - 1;
        size_t l = v->off[id + 1] - v->off[id];

        if (l == len && memcmp(v->blob + v->off[id], p, len) == 0) {
            if (c == 0 && first)
                *first = (int32_t)id;
            c++;
        }
        e = v->next[id];
    }
    return c;
}

int gw_vocab_count_prefixed(const gw_vocab_t *v, const char *p, size_t len, int32_t *first)
{
    size_t id;
    int c = 0;

    for (id = 0; id < v->n && c < 2; id++) {
        size_t l = v->off[id + 1] - v->off[id];

        if (l >= len && memcmp(v->blob + v->off[id], p, len) == 0) {
            if (c == 0 && first)
                *first = (int32_t)id;
            c++;
        }
    }
    return c;
}

int gw_vocab_split(const gw_vocab_t *v, const char *p, size_t len, size_t m, int32_t *ids)
{
    /* ways[pos * (m + 1) + k]: number of ways (capped at 2) to split p[pos..] into k pieces */
    unsigned char *ways;
    size_t pos, k, L, maxl;
    int rc;

    if (m == 0)
        return len == 0 ? 1 : 0;
    if (m > GW_VOCAB_MAX_SPLIT || len == 0 || len > 4096)
        return 0;
    maxl = v->max_len;
    ways = gw_xcalloc((len + 1) * (m + 1), 1);
    ways[len * (m + 1) + 0] = 1;
    for (pos = len; pos-- > 0;) {
        for (L = 1; L <= maxl && pos + L <= len; L++) {
            int c = gw_vocab_count_exact(v, p + pos, L, NULL);

            if (c == 0)
                continue;
            for (k = 1; k <= m; k++) {
                unsigned w = ways[(pos + L) * (m + 1) + k - 1];
                unsigned cur = ways[pos * (m + 1) + k];

                if (w == 0)
                    continue;
                cur += (unsigned)c * w;
                ways[pos * (m + 1) + k] = (unsigned char)(cur > 2 ? 2 : cur);
            }
        }
    }
    rc = ways[m];
    if (rc == 1) {
        /* walk the unique path */
        size_t kk = m;

        pos = 0;
        while (kk > 0) {
            int found = 0;

            for (L = 1; L <= maxl && pos + L <= len; L++) {
                int32_t id;

                if (gw_vocab_count_exact(v, p + pos, L, &id) == 1 &&
                    ways[(pos + L) * (m + 1) + kk - 1] == 1) {
                    ids[m - kk] = id;
                    pos += L;
                    kk--;
                    found = 1;
                    break;
                }
            }
            if (!found) {
                rc = 0; /* cannot happen when ways[m] == 1 */
                break;
            }
        }
    }
    free(ways);
    return rc;
}
