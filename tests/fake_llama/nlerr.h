/*
 * nlerr.h - the message nlohmann::json::parse() (llama-server's JSON parser) gives for
 * a malformed document, e.g. "[json.exception.parse_error.101] parse error at line 1,
 * column 2: syntax error while parsing value - invalid literal; last read: 'no'".
 *
 * This is only an emulation of nlohmann's lexer and parser error paths (positions,
 * token names, "last read" strings); fake-llama parses with jansson and calls this to
 * word the error when jansson rejects a body. Pure function, thread-safe.
 */
#ifndef FL_NLERR_H
#define FL_NLERR_H

#include <stddef.h>

/* Writes the message for s[0..n) into out and returns 1, or returns 0 if nlohmann
 * would accept the document. */
int fl_nlohmann_error(const char *s, size_t n, char *out, size_t size);

#endif /* FL_NLERR_H */
