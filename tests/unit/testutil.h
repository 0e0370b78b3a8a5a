/*
 * testutil.h - helpers shared by the check_<module> unit tests.
 *
 * This file owns what more than one suite needs and no module provides: loading
 * fixture files (tests/fixtures/...), and comparing JSON by value with a readable
 * message. Helpers fail the running check test on error instead of returning codes,
 * so they may only be called from inside a test.
 */
#ifndef GW_TESTS_UNIT_TESTUTIL_H
#define GW_TESTS_UNIT_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Reads a whole file into a malloc'd block with a NUL after the content; *len gets
 * the size. Fails the test if the file cannot be read. Caller frees.
 */
char *gw_test_read_file(const char *path, size_t *len);

/* Reads tests/fixtures/<rel> (the directory is compiled in as GW_TEST_FIXTURES). */
char *gw_test_fixture(const char *rel, size_t *len);

/*
 * Fails the test unless the JSON texts `got` and `want` are equal as values (object
 * key order does not matter). The message shows both, re-encoded with sorted keys.
 */
#define gw_test_json_eq(got, want) gw__test_json_eq((got), (want), __FILE__, __LINE__)
void gw__test_json_eq(const char *got, const char *want, const char *file, int line);

/* xorshift64*: a deterministic stream for mutation loops. *state must start non-zero. */
uint64_t gw_test_rand(uint64_t *state);

#endif
