/* Helpers shared by the provider tests. */
#include "tp.h"

#include <dirent.h>

char *tp_read(const char *rel, size_t *len)
{
    char path[1024];
    FILE *f;
    char *buf;
    long n;
    snprintf(path, sizeof path, "%s/%s", PROV_DATA_DIR, rel);
    if ((f = fopen(path, "rb")) == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

json_t *tp_load(const char *rel)
{
    json_error_t e;
    size_t n;
    char *text = tp_read(rel, &n);
    json_t *v;
    if (text == NULL)
        return NULL;
    v = json_loadb(text, n, 0, &e);
    if (v == NULL)
        printf("  %s: invalid JSON at line %d: %s\n", rel, e.line, e.text);
    free(text);
    return v;
}

static void show(const json_t *v, char *out, size_t cap)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    snprintf(out, cap, "%s", s ? s : "(missing)");
    free(s);
}

static int match_at(const json_t *e, const json_t *a, const char *path, char *why, size_t cap)
{
    char p[512], ev[300], av[300];
    if (json_is_string(e) && strcmp(json_string_value(e), "$any") == 0 && a != NULL)
        return 1;
    if (a && json_is_number(e) && json_is_number(a) &&
        json_number_value(e) == json_number_value(a))
        return 1;
    if (a && json_typeof(e) == json_typeof(a)) {
        if (json_is_object(e)) {
            const char *k;
            json_t *v;
            json_object_foreach((json_t *)e, k, v) {
                snprintf(p, sizeof p, "%s.%s", path, k);
                if (!match_at(v, json_object_get(a, k), p, why, cap))
                    return 0;
            }
            json_object_foreach((json_t *)a, k, v) {
                if (json_object_get(e, k) == NULL) {
                    show(v, av, sizeof av);
                    snprintf(why, cap, "%s.%s: unexpected key with value %s", path, k, av);
                    return 0;
                }
            }
            return 1;
        }
        if (json_is_array(e)) {
            size_t i;
            json_t *v;
            if (json_array_size(e) != json_array_size(a)) {
                show(e, ev, sizeof ev);
                show(a, av, sizeof av);
                snprintf(why, cap, "%s: expected %zu elements, got %zu\n    expected %s\n    got      %s",
                         path, json_array_size(e), json_array_size(a), ev, av);
                return 0;
            }
            json_array_foreach(e, i, v) {
                snprintf(p, sizeof p, "%s[%zu]", path, i);
                if (!match_at(v, json_array_get(a, i), p, why, cap))
                    return 0;
            }
            return 1;
        }
        if (json_equal((json_t *)e, (json_t *)a))
            return 1;
    }
    show(e, ev, sizeof ev);
    show(a, av, sizeof av);
    snprintf(why, cap, "%s: expected %s, got %s", path[0] ? path : "(root)", ev, av);
    return 0;
}

int tp_match(const json_t *expected, const json_t *actual, char *why, size_t cap)
{
    why[0] = '\0';
    return match_at(expected, actual, "", why, cap);
}

ac_provider *tp_provider(const char *name, const char **model)
{
    static json_t *all;
    json_t *entry;
    ac_provider *p = NULL;
    char path[128];
    if (all == NULL && (all = tp_load("providers.json")) == NULL)
        return NULL;
    entry = json_object_get(all, name);
    if (entry == NULL)
        return NULL;
    snprintf(path, sizeof path, "providers.%s", name);
    if (ac_provider_parse(name, json_object_get(entry, "config"), path, &p) != AC_OK) {
        printf("  provider %s: %s\n", name, ac_errmsg());
        return NULL;
    }
    if (model)
        *model = ac_json_str(entry, "model", "model");
    return p;
}

const char *tp_file_provider(const char *file)
{
    static char buf[128];
    const char *sep = strstr(file, "__");
    size_t n = sep ? (size_t)(sep - file) : strlen(file);
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    memcpy(buf, file, n);
    buf[n] = '\0';
    return buf;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **tp_list(const char *sub, const char *suffix, size_t *n)
{
    char path[1024];
    DIR *d;
    struct dirent *de;
    char **list = NULL;
    size_t cnt = 0, sl = strlen(suffix);
    snprintf(path, sizeof path, "%s/%s", PROV_DATA_DIR, sub);
    *n = 0;
    if ((d = opendir(path)) == NULL)
        return NULL;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > sl && strcmp(de->d_name + l - sl, suffix) == 0) {
            list = realloc(list, (cnt + 1) * sizeof *list);
            list[cnt++] = strdup(de->d_name);
        }
    }
    closedir(d);
    if (cnt)
        qsort(list, cnt, sizeof *list, cmp_str);
    *n = cnt;
    return list;
}

void tp_free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

int tp_code(const char *name)
{
    for (int c = 0; c >= -16; c--)
        if (strcmp(ac_strerror(c), name) == 0)
            return c;
    return 1;
}
