/* Metadata filters: JSON -> an SQL expression with bound parameters.
 *
 *   filter := {"field": F, "op": OP, "value": V}
 *           | {"and": [filter, ...]} | {"or": [filter, ...]} | {"not": filter}
 *   F      := a metadata key, or a dotted path into nested objects ("a.b"),
 *             of letters, digits, '_' and '-'; or one of the document's own
 *             fields "$id", "$title", "$source", "$format"
 *   OP     := eq | ne | gt | gte | lt | lte | in | nin | exists
 *
 * Comparisons are typed: a string value matches only string fields, a
 * number only numbers, a boolean only booleans. ne and nin also match
 * documents that lack the field (as MongoDB's $ne/$nin do); gt/gte/lt/lte
 * take a number or a string; in/nin take a non-empty array of scalars;
 * exists takes true or false. {"and": []} matches everything. */
#include "store.h"

#include <string.h>

#define FILTER_MAX_DEPTH 32
#define FILTER_MAX_IN 1000

static const char *const builtin_cols[][2] = {
    {"$id", "d.ext_id"},
    {"$title", "d.title"},
    {"$source", "d.source"},
    {"$format", "d.format"},
};

static int oom(void)
{
    return ac_err(AC_ENOMEM, "out of memory");
}

static int push(json_t *params, json_t *v)
{
    return json_array_append_new(params, v) ? oom() : AC_OK;
}

/* The JSON path "$."a"."b"" for a dotted field, or NULL with an error. */
static char *json_path_of(const char *field, const char *path)
{
    ac_buf b = AC_BUF_INIT;
    const char *p = field;
    int segs = 0;
    if (ac_buf_puts(&b, "$"))
        goto nomem;
    while (*p) {
        const char *q = p;
        while (*q && *q != '.') {
            char c = *q;
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-'))
                goto bad;
            q++;
        }
        if (q == p || ++segs > 16)
            goto bad;
        if (ac_buf_printf(&b, ".\"%.*s\"", (int)(q - p), p))
            goto nomem;
        p = *q ? q + 1 : q;
        if (*q && *p == '\0')
            goto bad;
    }
    if (segs == 0)
        goto bad;
    return ac_buf_steal(&b);
bad:
    ac_buf_free(&b);
    ac_err(AC_EINVAL,
           "%s.field: \"%s\" is not a field name (letters, digits, '_' and '-', nested keys "
           "joined by '.', or $id, $title, $source, $format)",
           path, field);
    return NULL;
nomem:
    ac_buf_free(&b);
    oom();
    return NULL;
}

static int is_scalar(const json_t *v)
{
    return json_is_string(v) || json_is_number(v) || json_is_boolean(v);
}

/* One typed equality test of the field against v. */
static int eq_sql(const char *col, const char *jpath, const json_t *v, ac_buf *sql, json_t *params)
{
    int rc;
    if (col) {
        if (!json_is_string(v))
            return ac_buf_puts(sql, "0") ? oom() : AC_OK;
        if (ac_buf_printf(sql, "(%s = ?)", col))
            return oom();
        return push(params, json_deep_copy(v));
    }
    if (json_is_boolean(v)) {
        if (ac_buf_printf(sql, "(json_type(d.metadata, ?) = '%s')", json_is_true(v) ? "true" : "false"))
            return oom();
        return push(params, json_string(jpath));
    }
    if (ac_buf_printf(sql, "(json_type(d.metadata, ?) %s AND json_extract(d.metadata, ?) = ?)",
                      json_is_string(v) ? "= 'text'" : "IN ('integer', 'real')"))
        return oom();
    if ((rc = push(params, json_string(jpath))) || (rc = push(params, json_string(jpath))))
        return rc;
    return push(params, json_deep_copy(v));
}

static int in_sql(const char *col, const char *jpath, const json_t *arr, ac_buf *sql,
                  json_t *params)
{
    size_t i;
    json_t *v;
    int rc;
    if (ac_buf_puts(sql, "("))
        return oom();
    json_array_foreach(arr, i, v) {
        if (i && ac_buf_puts(sql, " OR "))
            return oom();
        if ((rc = eq_sql(col, jpath, v, sql, params)))
            return rc;
    }
    return ac_buf_puts(sql, ")") ? oom() : AC_OK;
}

static int leaf_sql(const json_t *f, const char *path, ac_buf *sql, json_t *params)
{
    static const char *const ops[] = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists"};
    const char *field, *op, *col = NULL, *cmp = NULL;
    const json_t *v = json_object_get(f, "value");
    char *jpath = NULL, p[512];
    const char *key;
    json_t *x;
    int rc = AC_OK, known = 0;

    json_object_foreach((json_t *)f, key, x) {
        if (strcmp(key, "field") && strcmp(key, "op") && strcmp(key, "value"))
            return ac_err(AC_EINVAL,
                          "%s: unknown key \"%s\" (a condition has \"field\", \"op\" and "
                          "\"value\")",
                          path, key);
    }
    if (!json_is_string(json_object_get(f, "field")))
        return ac_err(AC_EINVAL, "%s.field: expected a string", path);
    if (!json_is_string(json_object_get(f, "op")))
        return ac_err(AC_EINVAL, "%s.op: expected a string", path);
    field = json_string_value(json_object_get(f, "field"));
    op = json_string_value(json_object_get(f, "op"));
    for (size_t i = 0; i < AC_ARRAY_LEN(ops); i++)
        known |= strcmp(op, ops[i]) == 0;
    if (!known)
        return ac_err(AC_EINVAL,
                      "%s.op: unknown operator \"%s\" (expected one of eq, ne, gt, gte, lt, lte, "
                      "in, nin, exists)",
                      path, op);
    if (v == NULL)
        return ac_err(AC_EINVAL, "%s.value: required", path);
    if (field[0] == '$') {
        for (size_t i = 0; i < AC_ARRAY_LEN(builtin_cols); i++)
            if (strcmp(field, builtin_cols[i][0]) == 0)
                col = builtin_cols[i][1];
        if (col == NULL)
            return ac_err(AC_EINVAL,
                          "%s.field: unknown document field \"%s\" (expected $id, $title, $source "
                          "or $format)",
                          path, field);
    } else if ((jpath = json_path_of(field, path)) == NULL) {
        return AC_EINVAL;
    }
    ac_path_join(p, sizeof p, path, "value");

    if (strcmp(op, "exists") == 0) {
        if (!json_is_boolean(v)) {
            rc = ac_err(AC_EINVAL, "%s: expected true or false", p);
            goto done;
        }
        if (col) {
            if (ac_buf_printf(sql, "(%s IS %s)", col, json_is_true(v) ? "NOT NULL" : "NULL"))
                rc = oom();
        } else if (ac_buf_printf(sql, "(json_type(d.metadata, ?) IS %s)",
                                 json_is_true(v) ? "NOT NULL" : "NULL")) {
            rc = oom();
        } else {
            rc = push(params, json_string(jpath));
        }
        goto done;
    }
    if (strcmp(op, "in") == 0 || strcmp(op, "nin") == 0) {
        size_t i;
        json_t *e;
        if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > FILTER_MAX_IN) {
            rc = ac_err(AC_EINVAL, "%s: expected a non-empty array (at most %d values)", p,
                        FILTER_MAX_IN);
            goto done;
        }
        json_array_foreach(v, i, e) {
            if (!is_scalar(e)) {
                char pi[600];
                ac_path_index(pi, sizeof pi, p, i);
                rc = ac_err(AC_EINVAL, "%s: expected a string, number or boolean", pi);
                goto done;
            }
        }
        if (op[0] == 'n') {
            if (ac_buf_puts(sql, "(NOT COALESCE(")) {
                rc = oom();
                goto done;
            }
        }
        if ((rc = in_sql(col, jpath, v, sql, params)))
            goto done;
        if (op[0] == 'n' && ac_buf_puts(sql, ", 0))"))
            rc = oom();
        goto done;
    }
    if (strcmp(op, "eq") == 0 || strcmp(op, "ne") == 0) {
        if (!is_scalar(v)) {
            rc = ac_err(AC_EINVAL, "%s: expected a string, number or boolean%s", p,
                        json_is_null(v) ? " (to test for a missing field use op \"exists\")" : "");
            goto done;
        }
        if (op[0] == 'n' && ac_buf_puts(sql, "(NOT COALESCE(")) {
            rc = oom();
            goto done;
        }
        if ((rc = eq_sql(col, jpath, v, sql, params)))
            goto done;
        if (op[0] == 'n' && ac_buf_puts(sql, ", 0))"))
            rc = oom();
        goto done;
    }
    /* ordering */
    if (!json_is_string(v) && !json_is_number(v)) {
        rc = ac_err(AC_EINVAL, "%s: \"%s\" needs a number or a string", p, op);
        goto done;
    }
    cmp = strcmp(op, "gt") == 0 ? ">" : strcmp(op, "gte") == 0 ? ">=" : strcmp(op, "lt") == 0 ? "<" : "<=";
    if (col) {
        if (!json_is_string(v)) {
            rc = ac_buf_puts(sql, "0") ? oom() : AC_OK;
            goto done;
        }
        if (ac_buf_printf(sql, "(%s %s ?)", col, cmp))
            rc = oom();
        else
            rc = push(params, json_deep_copy(v));
        goto done;
    }
    if (ac_buf_printf(sql, "(json_type(d.metadata, ?) %s AND json_extract(d.metadata, ?) %s ?)",
                      json_is_string(v) ? "= 'text'" : "IN ('integer', 'real')", cmp)) {
        rc = oom();
        goto done;
    }
    if ((rc = push(params, json_string(jpath))) || (rc = push(params, json_string(jpath))))
        goto done;
    rc = push(params, json_deep_copy(v));
done:
    ac_free(jpath);
    return rc;
}

static int filter_sql(const json_t *f, const char *path, ac_buf *sql, json_t *params, int depth)
{
    const json_t *sub;
    const char *comb = NULL;
    int rc;

    if (depth > FILTER_MAX_DEPTH)
        return ac_err(AC_EINVAL, "%s: nested more than %d levels", path, FILTER_MAX_DEPTH);
    if (!json_is_object(f))
        return ac_err(AC_EINVAL, "%s: expected an object", path);
    if (json_object_get(f, "and"))
        comb = "and";
    else if (json_object_get(f, "or"))
        comb = "or";
    else if (json_object_get(f, "not"))
        comb = "not";
    if (comb == NULL) {
        if (json_object_size(f) == 0)
            return ac_err(AC_EINVAL,
                          "%s: empty; expected {\"field\", \"op\", \"value\"}, {\"and\": [...]}, "
                          "{\"or\": [...]} or {\"not\": {...}} ({\"and\": []} matches everything)",
                          path);
        return leaf_sql(f, path, sql, params);
    }
    if (json_object_size(f) != 1) {
        const char *key;
        json_t *x;
        json_object_foreach((json_t *)f, key, x) {
            if (strcmp(key, comb) != 0)
                return ac_err(AC_EINVAL, "%s: unknown key \"%s\" beside \"%s\"", path, key, comb);
        }
    }
    sub = json_object_get(f, comb);
    if (strcmp(comb, "not") == 0) {
        char p[512];
        ac_path_join(p, sizeof p, path, "not");
        if (ac_buf_puts(sql, "(NOT COALESCE("))
            return oom();
        if ((rc = filter_sql(sub, p, sql, params, depth + 1)))
            return rc;
        return ac_buf_puts(sql, ", 0))") ? oom() : AC_OK;
    }
    {
        char p[512];
        size_t i;
        json_t *e;
        ac_path_join(p, sizeof p, path, comb);
        if (!json_is_array(sub))
            return ac_err(AC_EINVAL, "%s: expected an array of filters", p);
        if (json_array_size(sub) == 0)
            return ac_buf_puts(sql, comb[0] == 'a' ? "1" : "0") ? oom() : AC_OK;
        if (ac_buf_puts(sql, "("))
            return oom();
        json_array_foreach(sub, i, e) {
            char pi[600];
            ac_path_index(pi, sizeof pi, p, i);
            if (i && ac_buf_puts(sql, comb[0] == 'a' ? " AND " : " OR "))
                return oom();
            if ((rc = filter_sql(e, pi, sql, params, depth + 1)))
                return rc;
        }
        return ac_buf_puts(sql, ")") ? oom() : AC_OK;
    }
}

int ac__store_filter_sql(const json_t *filter, const char *path, ac_buf *sql, json_t *params)
{
    return filter_sql(filter, path, sql, params, 0);
}

int ac__store_bind(sqlite3_stmt *st, int first, const json_t *params)
{
    size_t i;
    json_t *v;
    json_array_foreach(params, i, v) {
        int ix = first + (int)i, rc;
        if (json_is_string(v))
            rc = sqlite3_bind_text(st, ix, json_string_value(v), (int)json_string_length(v),
                                   SQLITE_TRANSIENT);
        else if (json_is_integer(v))
            rc = sqlite3_bind_int64(st, ix, json_integer_value(v));
        else if (json_is_real(v))
            rc = sqlite3_bind_double(st, ix, json_real_value(v));
        else if (json_is_boolean(v))
            rc = sqlite3_bind_int(st, ix, json_is_true(v));
        else
            rc = sqlite3_bind_null(st, ix);
        if (rc != SQLITE_OK)
            return ac_err(AC_ESTORAGE, "filter: cannot bind parameter %d: %s", ix,
                          sqlite3_errstr(rc));
    }
    return AC_OK;
}
