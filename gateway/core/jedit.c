/* jedit.c - splice lists over serialized JSON. */
#include "core/jedit.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

void gw_jedit_init(gw_jedit_t *e)
{
    memset(e, 0, sizeof(*e));
}

void gw_jedit_free(gw_jedit_t *e)
{
    size_t i;

    for (i = 0; i < e->n; i++)
        free(e->v[i].ins);
    free(e->v);
    memset(e, 0, sizeof(*e));
}

void gw_jedit_splice(gw_jedit_t *e, size_t off, size_t del, const char *ins, size_t ins_len)
{
    gw_jsplice_t *s;

    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->v = gw_xrealloc(e->v, e->cap * sizeof(*e->v));
    }
    s = &e->v[e->n++];
    s->off = off;
    s->del = del;
    s->ins = ins_len ? gw_xstrndup(ins, ins_len) : NULL;
    s->ins_len = ins_len;
    s->seq = e->n - 1;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void gw_jedit_remove_member(gw_jedit_t *e, const char *src, size_t len, size_t obj_off,
                            const gw_jspan_t *m)
{
    size_t start = m->mem_off, end = m->val_off + m->val_len, j;

    /* prefer eating the preceding comma, `,"a":1`, so that removing several adjacent
     * members never leaves two commas or a trailing one */
    j = start;
    while (j > obj_off && is_ws(src[j - 1]))
        j--;
    if (j > obj_off && src[j - 1] == ',') {
        gw_jedit_splice(e, j - 1, end - (j - 1), NULL, 0);
        return;
    }
    /* the first member: eat the following comma, `"a":1,` */
    j = end;
    while (j < len && is_ws(src[j]))
        j++;
    if (j < len && src[j] == ',') {
        j++;
        while (j < len && is_ws(src[j]))
            j++;
    } else {
        j = end;
    }
    gw_jedit_splice(e, start, j - start, NULL, 0);
}

void gw_jedit_append_member(gw_jedit_t *e, const char *src, size_t obj_off, size_t obj_len,
                            const char *key, const char *raw, size_t raw_len)
{
    size_t close = obj_off + obj_len - 1, j = close, klen = strlen(key);
    int empty;
    char *ins;
    size_t n = 0;

    while (j > obj_off + 1 && is_ws(src[j - 1]))
        j--;
    empty = src[j - 1] == '{';
    ins = gw_xmalloc(klen + raw_len + 8);
    if (!empty)
        ins[n++] = ',';
    ins[n++] = '"';
    memcpy(ins + n, key, klen);
    n += klen;
    ins[n++] = '"';
    ins[n++] = ':';
    memcpy(ins + n, raw, raw_len);
    n += raw_len;
    gw_jedit_splice(e, close, 0, ins, n);
    free(ins);
}

/* Drops the splices added since n0 (an edit that failed half way). */
static void truncate_to(gw_jedit_t *e, size_t n0)
{
    while (e->n > n0)
        free(e->v[--e->n].ins);
}

/* Appends `[,]"key":raw` for each entry of set not already placed, at off. */
static void append_rest(gw_jedit_t *e, size_t off, int comma, const gw_jmember_set_t *set,
                        size_t n_set, const unsigned char *placed)
{
    size_t k, n = 0, cap = 0;
    char *ins;

    for (k = 0; k < n_set; k++)
        if (set[k].raw != NULL && !placed[k])
            cap += strlen(set[k].key) + set[k].raw_len + 4;
    if (cap == 0)
        return;
    ins = gw_xmalloc(cap);
    for (k = 0; k < n_set; k++) {
        size_t klen;

        if (set[k].raw == NULL || placed[k])
            continue;
        klen = strlen(set[k].key);
        if (comma)
            ins[n++] = ',';
        comma = 1;
        ins[n++] = '"';
        memcpy(ins + n, set[k].key, klen);
        n += klen;
        ins[n++] = '"';
        ins[n++] = ':';
        memcpy(ins + n, set[k].raw, set[k].raw_len);
        n += set[k].raw_len;
    }
    gw_jedit_splice(e, off, 0, ins, n);
    free(ins);
}

int gw_jedit_object(gw_jedit_t *e, const char *src, size_t len, size_t obj_off,
                    const gw_jmember_set_t *set, size_t n_set)
{
    size_t n0 = e->n, it = 0, k, open = obj_off;
    size_t kept_end = 0;            /* end of the last kept member's value */
    size_t run_off = 0, run_end = 0; /* the pending run of removed members */
    int kept = 0, in_run = 0, rc;
    unsigned char *placed = gw_xcalloc(n_set + 1, 1);
    gw_jspan_t m;

    while (open < len && is_ws(src[open]))
        open++;
    while ((rc = gw_json_object_next(src, len, obj_off, &it, &m)) == 1) {
        size_t end = m.val_off + m.val_len;

        for (k = 0; k < n_set && !gw_json_key_eq(src, len, &m, set[k].key); k++)
            ;
        if (k < n_set && (set[k].raw == NULL || placed[k])) {
            /* removed: extend the run */
            if (!in_run)
                run_off = m.mem_off;
            in_run = 1;
            run_end = end;
            continue;
        }
        if (in_run) {
            /* after a kept member: `,"a":1,"b":2` (its comma before the run); at the
             * start: `"a":1,"b":2, ` up to this member's key */
            if (kept)
                gw_jedit_splice(e, kept_end, run_end - kept_end, NULL, 0);
            else
                gw_jedit_splice(e, run_off, m.mem_off - run_off, NULL, 0);
            in_run = 0;
        }
        if (k < n_set) {
            placed[k] = 1;
            gw_jedit_splice(e, m.val_off, m.val_len, set[k].raw, set[k].raw_len);
        }
        kept = 1;
        kept_end = end;
    }
    if (rc < 0) {
        truncate_to(e, n0);
        free(placed);
        return -1;
    }
    if (in_run) {
        /* a run at the end (or every member): the whitespace before '}' stays */
        if (kept)
            gw_jedit_splice(e, kept_end, run_end - kept_end, NULL, 0);
        else
            gw_jedit_splice(e, run_off, run_end - run_off, NULL, 0);
    }
    /* an insertion sorts before a deletion at the same offset (cmp_splice) */
    append_rest(e, kept ? kept_end : open + 1, kept, set, n_set, placed);
    free(placed);
    return 0;
}

static int cmp_splice(const void *a, const void *b)
{
    const gw_jsplice_t *x = a, *y = b;

    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    /* at the same offset: pure insertions before deletions, then in the order added */
    if ((x->del > 0) != (y->del > 0))
        return x->del > 0 ? 1 : -1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

int gw_jedit_apply(gw_jedit_t *e, const char *src, size_t len, gw_buf_t *out)
{
    size_t pos = 0, i;

    if (e->n > 1)
        qsort(e->v, e->n, sizeof(*e->v), cmp_splice);
    for (i = 0; i < e->n; i++) {
        gw_jsplice_t *s = &e->v[i];

        if (s->off + s->del > len)
            return -1;
        if (s->off < pos) {
            /* inside a range an earlier splice already replaced: moot */
            if (s->off + s->del <= pos)
                continue;
            /* two deletions that share a comma (adjacent members removed): union */
            if (s->ins_len != 0)
                return -1; /* a partly overlapping insertion: a caller bug */
            pos = s->off + s->del;
            continue;
        }
        if (gw_buf_add(out, src + pos, s->off - pos) != GW_OK ||
            gw_buf_add(out, s->ins, s->ins_len) != GW_OK)
            return -1;
        pos = s->off + s->del;
    }
    return gw_buf_add(out, src + pos, len - pos) == GW_OK ? 0 : -1;
}
