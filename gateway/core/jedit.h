/*
 * jedit.h - byte-preserving edits of serialized JSON: a list of (offset, delete, insert)
 * splices applied in one pass. Used with jspan.h to rewrite backend JSON while every
 * byte the gateway does not own passes through unchanged.
 *
 * Usage: gw_jedit_init, add splices (any order, non-overlapping), gw_jedit_apply into
 * an output buffer, gw_jedit_free. Single-threaded; the source must outlive the edit.
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
 * of one object together. Also removes array elements (obj_off = the array's offset). */
void gw_jedit_remove_member(gw_jedit_t *e, const char *src, size_t len, size_t obj_off,
                            const gw_jspan_t *m);
/* Appends `"key":raw` as the last member of the object spanning [obj_off, obj_off+obj_len). */
void gw_jedit_append_member(gw_jedit_t *e, const char *src, size_t obj_off, size_t obj_len,
                            const char *key, const char *raw, size_t raw_len);
/* Applies every splice to src and appends the result to out. A splice that lies wholly
 * inside a range an earlier splice replaced is dropped; deletions that overlap merge.
 * -1 if out's ceiling is hit or an insertion partly overlaps another splice. */
int gw_jedit_apply(gw_jedit_t *e, const char *src, size_t len, gw_buf_t *out);

#endif
