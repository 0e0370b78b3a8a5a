/*
 * vocab.h - a backend's token vocabulary: id -> piece bytes, and the reverse lookups
 * that token-ID recovery needs.
 *
 * Built from llama-server's `/tokenize` answer for the id list [0, n_vocab) with
 * `with_pieces: true` (pieces rendered with special=true, the same rendering as
 * `/detokenize`, which concatenates and so cannot be batched per id). Immutable after
 * construction and reference counted, so a stream keeps using the vocabulary it started
 * with while the cache drops it (backend restart). Any thread.
 */
#ifndef GW_CORE_VOCAB_H
#define GW_CORE_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct gw_vocab gw_vocab_t;

/* Parses `{"tokens":[{"id":..,"piece":"..."|[bytes]},...]}`. Every id in [0, n) must be
 * present exactly once. Returns NULL with err filled on a malformed answer. */
gw_vocab_t *gw_vocab_from_json(const char *json, size_t len, size_t n, gw_errbuf_t *err);
/* Builds from raw pieces (tests). pieces[i] has lens[i] bytes. */
gw_vocab_t *gw_vocab_from_pieces(const char *const *pieces, const size_t *lens, size_t n);
void gw_vocab_ref(gw_vocab_t *v);
void gw_vocab_unref(gw_vocab_t *v);

size_t gw_vocab_size(const gw_vocab_t *v);
/* The piece of id (borrowed); NULL if id is out of range. */
const char *gw_vocab_piece(const gw_vocab_t *v, int64_t id, size_t *len);
/* Number of ids whose piece is exactly p (capped at 2); *first gets one of them. */
int gw_vocab_count_exact(const gw_vocab_t *v, const char *p, size_t len, int32_t *first);
/* Number of ids whose piece starts with p (capped at 2); *first gets one of them. */
int gw_vocab_count_prefixed(const gw_vocab_t *v, const char *p, size_t len, int32_t *first);

/*
 * Splits p into exactly m consecutive non-empty vocabulary pieces. Returns 1 and
 * fills ids[0..m) when exactly one such split exists, 0 when none, 2 when several (the
 * answer would be a guess). m is at most 64.
 */
int gw_vocab_split(const gw_vocab_t *v, const char *p, size_t len, size_t m, int32_t *ids);

#endif
