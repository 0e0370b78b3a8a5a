/*
 * err.h - the closed set of gateway result codes.
 *
 * One X-macro table gives each code its HTTP status, its OpenAI error `type` and
 * its default OpenAI error `code` string, so that every layer speaks the same codes
 * and only the HTTP layer turns them into bodies. GW_OK is 0. Lower layers return a
 * code and fill a gw_errbuf_t with the detail ("models.qwen.upstream: expected an
 * http(s) URL"); they never print.
 */
#ifndef GW_CORE_ERR_H
#define GW_CORE_ERR_H

#include <stdarg.h>
#include <stddef.h>

/*      name          status type                     code                     */
#define GW_ERR_MAP(XX)                                                                  \
    XX(EBADREQ,       400, "invalid_request_error", "invalid_request")                 \
    XX(EBADJSON,      400, "invalid_request_error", "invalid_json")                    \
    XX(EPARAM,        400, "invalid_request_error", "invalid_value")                   \
    XX(EAUTH,         401, "authentication_error",  "invalid_api_key")                 \
    XX(EFORBIDDEN,    403, "permission_error",      "model_not_allowed")               \
    XX(ENOROUTE,      404, "not_found_error",       "not_found")                       \
    XX(ENOMODEL,      404, "invalid_request_error", "model_not_found")                 \
    XX(EMETHOD,       405, "invalid_request_error", "method_not_allowed")              \
    XX(ETIMEOUTREQ,   408, "invalid_request_error", "request_timeout")                 \
    XX(ECONFLICT,     409, "invalid_request_error", "model_busy")                      \
    XX(ETOOBIG,       413, "invalid_request_error", "request_too_large")               \
    XX(EURITOOLONG,   414, "invalid_request_error", "uri_too_long")                    \
    XX(ERATELIMIT,    429, "rate_limit_error",      "rate_limit_exceeded")             \
    XX(EHDRTOOBIG,    431, "invalid_request_error", "request_header_fields_too_large") \
    XX(EJSONDEPTH,    400, "invalid_request_error", "json_too_deep")                   \
    XX(EINTERNAL,     500, "server_error",          "internal_error")                  \
    XX(EUPSTREAM,     502, "server_error",          "backend_error")                   \
    XX(EUNREACHABLE,  502, "server_error",          "backend_unreachable")             \
    XX(EBUSY,         503, "server_error",          "backend_not_ready")               \
    XX(EOVERLOAD,     503, "server_error",          "overloaded")                      \
    XX(ETIMEOUT,      504, "server_error",          "backend_timeout")

typedef enum gw_err {
    GW_OK = 0,
#define GW__ERR_ENUM(name, status, type, code) GW_##name,
    GW_ERR_MAP(GW__ERR_ENUM)
#undef GW__ERR_ENUM
    GW_ERR__COUNT
} gw_err_t;

/* Static strings for a code; never NULL (GW_OK maps to 200 / "" / ""). */
int gw_err_status(gw_err_t e);
const char *gw_err_type(gw_err_t e);
const char *gw_err_code(gw_err_t e);
const char *gw_err_name(gw_err_t e);

/* Error detail that travels beside a code. Fixed size: a detail never allocates. */
#define GW_ERRBUF_LEN 512
typedef struct gw_errbuf {
    char msg[GW_ERRBUF_LEN];
    char param[128]; /* the OpenAI `param` the error is about, "" when none */
} gw_errbuf_t;

/* Fills e (if non-NULL) and returns code, so callers can `return gw_errf(...)`. */
gw_err_t gw_errf(gw_errbuf_t *e, gw_err_t code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
