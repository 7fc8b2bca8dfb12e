/* Thread-local error state and status-code names. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#define AC_ERRMSG_CAP 2048

static _Thread_local char errmsg[AC_ERRMSG_CAP];

int ac_verr(int code, const char *fmt, va_list ap)
{
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    return code;
}

int ac_err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ac_verr(code, fmt, ap);
    va_end(ap);
    return code;
}

int ac_err_prefix(int code, const char *fmt, ...)
{
    char old[AC_ERRMSG_CAP];
    char prefix[512];
    va_list ap;
    memcpy(old, errmsg, sizeof old);
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (old[0])
        snprintf(errmsg, sizeof errmsg, "%s: %s", prefix, old);
    else
        snprintf(errmsg, sizeof errmsg, "%s", prefix);
    return code;
}

void ac_err_clear(void)
{
    errmsg[0] = '\0';
}

AC_API const char *ac_errmsg(void)
{
    return errmsg;
}

AC_API const char *ac_strerror(int code)
{
    switch (code) {
    case AC_OK: return "AC_OK";
    case AC_EINVAL: return "AC_EINVAL";
    case AC_ENOMEM: return "AC_ENOMEM";
    case AC_ENOTFOUND: return "AC_ENOTFOUND";
    case AC_EIO: return "AC_EIO";
    case AC_ESTORAGE: return "AC_ESTORAGE";
    case AC_EPROVIDER: return "AC_EPROVIDER";
    case AC_EAUTH: return "AC_EAUTH";
    case AC_ETIMEOUT: return "AC_ETIMEOUT";
    case AC_ERATELIMIT: return "AC_ERATELIMIT";
    case AC_ECONTEXT: return "AC_ECONTEXT";
    case AC_EBUDGET: return "AC_EBUDGET";
    case AC_ETOOL: return "AC_ETOOL";
    case AC_ECANCELLED: return "AC_ECANCELLED";
    case AC_EBUSY: return "AC_EBUSY";
    case AC_EUNSUPPORTED: return "AC_EUNSUPPORTED";
    case AC_EUSER: return "AC_EUSER";
    default: return "AC_E?";
    }
}

AC_API const char *ac_version(void)
{
    return AC_VERSION_STRING;
}

AC_API int ac_version_number(void)
{
    return AC_VERSION_NUMBER;
}
