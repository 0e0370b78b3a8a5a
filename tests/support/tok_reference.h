/* tok_reference.h - the reference token-ID request rewrite for tests and fuzzers. */
#ifndef GW_TEST_TOK_REFERENCE_H
#define GW_TEST_TOK_REFERENCE_H

#include <jansson.h>

#include "core/vocab.h"
#include "openai/tokids.h"

/* The upstream body as the tree-based rewrite wrote it, or NULL. New string (free it). */
char *gw_test_tok_tree_body(json_t *root, const gw_tok_req_t *tr, const gw_vocab_t *vocab);

#endif
