/*
 * jedit.h - byte-preserving edits of serialized JSON: a list of (offset, delete, insert)
 * splices applied in one pass. Used with jspan.h to rewrite backend JSON (and, on the
 * token-ID path, the client's request) while every byte the gateway does not own passes
 * through unchanged.
 *
 * Usage: gw_jedit_init, add splices (any order, non-overlapping) or a whole object's
 * member edits (gw_jedit_object), gw_jedit_apply into an output buffer, gw_jedit_free.
 * Single-threaded; the source must outlive the edit.
 */
#ifndef GW_CORE_JEDIT_H
#define GW_CORE_JEDIT_H

#include <stddef.h>

#include "core/buf.h"
#include "core/jspan.h"

typedef struct gw_jsplice {
    size_t off;   /* position in the source */
    size_t del;   /* bytes of the source removed at off */
    char *ins;    /* owned bytes inserted at off (may be NULL) */
    size_t ins_len;
    size_t seq;   /* insertion order: splices at one offset apply in the order added */
} gw_jsplice_t;

typedef struct gw_jedit {
    gw_jsplice_t *v;
    size_t n, cap;
} gw_jedit_t;

void gw_jedit_init(gw_jedit_t *e);
void gw_jedit_free(gw_jedit_t *e);
/* Replace [off, off+del) with ins (copied). */
void gw_jedit_splice(gw_jedit_t *e, size_t off, size_t del, const char *ins, size_t ins_len);
/* Removes the member described by m (from jspan) inside the object whose span starts at
 * obj_off, with the comma that separates it from a neighbour (the preceding one, except
 * for the first member). Removing several members works, except the first two members
 * of one object together (gw_jedit_object handles any set). Also removes array elements
 * (obj_off = the array's offset). */
void gw_jedit_remove_member(gw_jedit_t *e, const char *src, size_t len, size_t obj_off,
                            const gw_jspan_t *m);
/* Appends `"key":raw` as the last member of the object spanning [obj_off, obj_off+obj_len). */
void gw_jedit_append_member(gw_jedit_t *e, const char *src, size_t obj_off, size_t obj_len,
                            const char *key, const char *raw, size_t raw_len);
/* One entry of gw_jedit_object's table. */
typedef struct gw_jmember_set {
    const char *key;  /* the member's name; written as is when appended (no escaping) */
    const char *raw;  /* its new value as serialized JSON (copied), or NULL to remove it */
    size_t raw_len;
} gw_jmember_set_t;

/*
 * Rewrites the members named in set (n_set entries, distinct keys) of the object at
 * src[obj_off] (whitespace allowed), every other byte kept. Keys are compared decoded
 * (gw_json_key_eq). For an entry with raw == NULL, every occurrence of key is removed.
 * Otherwise the first occurrence keeps its key bytes and position and gets raw as its
 * value, later occurrences are removed, and an absent key is appended as `"key":raw`
 * after the last remaining member (or right after '{'), appended entries in table
 * order. Commas are fixed up for removals anywhere (first, middle, last, all, runs):
 * a removed run after a kept member takes the text from that member's value end to
 * the run's end; a run at the start takes the text up to the next kept key.
 * Returns 0, or -1 (no splice added) if src[obj_off] is not a well-formed object. The
 * splices must not overlap others added to e, except inside a replaced value's source.
 */
int gw_jedit_object(gw_jedit_t *e, const char *src, size_t len, size_t obj_off,
                    const gw_jmember_set_t *set, size_t n_set);
/* Applies every splice to src and appends the result to out. A splice that lies wholly
 * inside a range an earlier splice replaced is dropped; deletions that overlap merge.
 * -1 if out's ceiling is hit or an insertion partly overlaps another splice. */
int gw_jedit_apply(gw_jedit_t *e, const char *src, size_t len, gw_buf_t *out);

#endif
