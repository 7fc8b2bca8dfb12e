/* JSON helpers and the table-driven config checker. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *ac_json_str(const json_t *obj, const char *key, const char *def)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : def;
}

long long ac_json_int(const json_t *obj, const char *key, long long def)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    return def;
}

double ac_json_num(const json_t *obj, const char *key, double def)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_number(v) ? json_number_value(v) : def;
}

int ac_json_bool(const json_t *obj, const char *key, int def)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_boolean(v) ? json_is_true(v) : def;
}

json_t *ac_json_parse(const char *text, size_t len, const char *what, size_t flags)
{
    json_error_t e;
    json_t *v;
    if (text == NULL) {
        ac_err(AC_EINVAL, "%s: missing (NULL)", what);
        return NULL;
    }
    v = json_loadb(text, len, flags | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
    if (v == NULL)
        ac_err(AC_EINVAL, "%s: invalid JSON at line %d column %d: %s", what, e.line, e.column,
               e.text);
    return v;
}

char *ac_json_dump(const json_t *v)
{
    /* 10 significant digits: latencies and costs print as 0.614, not
     * 0.61399999999999999, and formatting is cheaper */
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
    char *r;
    if (s == NULL) {
        ac_err(AC_ENOMEM, "out of memory encoding JSON");
        return NULL;
    }
    /* Hand out memory from our allocator so callers can ac_free() it
     * regardless of jansson's allocator settings. */
    r = ac_strdup(s);
    free(s);
    if (r == NULL)
        ac_err(AC_ENOMEM, "out of memory encoding JSON");
    return r;
}

const char *ac_path_join(char *buf, size_t cap, const char *path, const char *key)
{
    if (path == NULL || path[0] == '\0')
        snprintf(buf, cap, "%s", key);
    else
        snprintf(buf, cap, "%s.%s", path, key);
    return buf;
}

const char *ac_path_index(char *buf, size_t cap, const char *path, size_t i)
{
    snprintf(buf, cap, "%s[%zu]", path ? path : "", i);
    return buf;
}

static const char *type_word(ac_type t)
{
    switch (t) {
    case AC_T_STRING: return "a string";
    case AC_T_INT: return "an integer";
    case AC_T_NUMBER: return "a number";
    case AC_T_BOOL: return "true or false";
    case AC_T_OBJECT: return "an object";
    case AC_T_ARRAY: return "an array";
    case AC_T_STRINGS: return "an array of strings";
    default: return "a value";
    }
}

static int type_ok(const json_t *v, ac_type t)
{
    size_t i;
    json_t *e;
    switch (t) {
    case AC_T_STRING: return json_is_string(v);
    case AC_T_INT:
        return json_is_integer(v) ||
               (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) &&
                fabs(json_real_value(v)) < 9e15);
    case AC_T_NUMBER: return json_is_number(v);
    case AC_T_BOOL: return json_is_boolean(v);
    case AC_T_OBJECT: return json_is_object(v);
    case AC_T_ARRAY: return json_is_array(v);
    case AC_T_STRINGS:
        if (!json_is_array(v))
            return 0;
        json_array_foreach(v, i, e)
            if (!json_is_string(e))
                return 0;
        return 1;
    default: return 1;
    }
}

int ac_cfg_check(const json_t *obj, const char *path, const ac_field *fields)
{
    char p[512];
    const char *key;
    json_t *v;
    const ac_field *f;

    if (!json_is_object(obj))
        return ac_err(AC_EINVAL, "%s: expected an object", path && path[0] ? path : "(root)");
    json_object_foreach((json_t *)obj, key, v) {
        for (f = fields; f->key; f++)
            if (strcmp(f->key, key) == 0)
                break;
        if (f->key == NULL)
            return ac_err(AC_EINVAL, "%s: unknown key \"%s\"",
                          path && path[0] ? path : "(root)", key);
        if (json_is_null(v) && !f->required)
            continue;
        if (!type_ok(v, f->type))
            return ac_err(AC_EINVAL, "%s: expected %s", ac_path_join(p, sizeof p, path, key),
                          type_word(f->type));
        if ((f->type == AC_T_INT || f->type == AC_T_NUMBER) && f->min < f->max) {
            double d = json_number_value(v);
            if (d < f->min || d > f->max)
                return ac_err(AC_EINVAL, "%s: %g is out of range [%g, %g]",
                              ac_path_join(p, sizeof p, path, key), d, f->min, f->max);
        }
        if (f->type == AC_T_STRING && json_string_length(v) != strlen(json_string_value(v)))
            return ac_err(AC_EINVAL, "%s: contains a NUL character",
                          ac_path_join(p, sizeof p, path, key));
    }
    for (f = fields; f->key; f++) {
        v = json_object_get(obj, f->key);
        if (f->required && (v == NULL || json_is_null(v)))
            return ac_err(AC_EINVAL, "%s: required %s is missing",
                          ac_path_join(p, sizeof p, path, f->key), type_word(f->type));
    }
    return AC_OK;
}
