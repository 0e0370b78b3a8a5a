/* err.c - tables behind err.h. */
#include "core/err.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int status;
    const char *type;
    const char *code;
} table[GW_ERR__COUNT] = {
    [GW_OK] = {"OK", 200, "", ""},
#define GW__ERR_ROW(n, s, t, c) [GW_##n] = {#n, s, t, c},
    GW_ERR_MAP(GW__ERR_ROW)
#undef GW__ERR_ROW
};

static int valid(gw_err_t e)
{
    return (int)e >= 0 && e < GW_ERR__COUNT;
}

int gw_err_status(gw_err_t e)
{
    return valid(e) ? table[e].status : 500;
}

const char *gw_err_type(gw_err_t e)
{
    return valid(e) ? table[e].type : "server_error";
}

const char *gw_err_code(gw_err_t e)
{
    return valid(e) ? table[e].code : "internal_error";
}

const char *gw_err_name(gw_err_t e)
{
    return valid(e) ? table[e].name : "?";
}

gw_err_t gw_errf(gw_errbuf_t *e, gw_err_t code, const char *param, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    return code;
}
