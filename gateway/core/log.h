/*
 * log.h - level-gated logging to stderr, one line per call.
 *
 * GW_LOG checks the level before evaluating its arguments (redis serverLog). Lines
 * look like `2026-11-29T03:20:01.123Z info  message`. Thread-safe: each line is
 * written with one write(2). Only http/, backend/ and main.c log (STYLE rule 5).
 */
#ifndef GW_CORE_LOG_H
#define GW_CORE_LOG_H

#include <stddef.h>

enum { GW_LOG_ERROR = 0, GW_LOG_WARN = 1, GW_LOG_INFO = 2, GW_LOG_DEBUG = 3 };

extern int gw_log_level;

void gw_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Copies n bytes of s into dst (cap bytes, NUL-terminated) for a log line: bytes
 * outside printable ASCII, '\\' and '"' become \xNN, so client-controlled text (a path,
 * a model name) can neither split a log line nor forge one. Cut with "..." when it
 * does not fit. Returns dst.
 */
const char *gw_log_safe(char *dst, size_t cap, const char *s, size_t n);

#define GW_LOG(level, ...)                                                                     \
    do {                                                                                       \
        if ((level) <= gw_log_level)                                                           \
            gw_log_write((level), __VA_ARGS__);                                                \
    } while (0)

#endif
