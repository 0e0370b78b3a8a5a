/* log.c - the one log sink (stderr). */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int gw_log_level = GW_LOG_INFO;

static const char *const names[] = {"error", "warn ", "info ", "debug"};

void gw_log_write(int level, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int k;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s ", ts.tv_nsec / 1000000,
                 names[level < 0 ? 0 : level > 3 ? 3 : level]);
    n += (size_t)k;
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (k < 0)
        k = 0;
    n += (size_t)k;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    (void)!write(STDERR_FILENO, line, n);
}

static int log_plain(unsigned char ch)
{
    return ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '"';
}

const char *gw_log_safe(char *dst, size_t cap, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, o = 0, full = 0, room;

    if (cap == 0)
        return dst;
    for (i = 0; i < n; i++)
        full += log_plain((unsigned char)s[i]) ? 1 : 4;
    /* everything fits, or keep room for "..." */
    room = full < cap ? cap - 1 : (cap > 4 ? cap - 4 : 0);
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (log_plain(ch)) {
            if (o + 1 > room)
                break;
            dst[o++] = (char)ch;
        } else {
            if (o + 4 > room)
                break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[ch >> 4];
            dst[o++] = hex[ch & 15];
        }
    }
    if (i < n && o + 3 < cap) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
    return dst;
}
