/* The model pool: parsing and lookup. */
#include "pool.h"
#include "../providers/provider.h"

#include <string.h>

static const ac_field model_fields[] = {
    {"name", AC_T_STRING, true, 0, 0},
    {"provider", AC_T_STRING, true, 0, 0},
    {"model", AC_T_STRING, true, 0, 0},
    {"context_window", AC_T_INT, false, 1, 1e9},
    {"max_output_tokens", AC_T_INT, false, 1, 1e9},
    {"price_input", AC_T_NUMBER, false, 0, 1e6},
    {"price_output", AC_T_NUMBER, false, 0, 1e6},
    {"price_cached_input", AC_T_NUMBER, false, 0, 1e6},
    {"capabilities", AC_T_STRINGS, false, 0, 0},
    {"tags", AC_T_STRINGS, false, 0, 0},
    {"weight", AC_T_NUMBER, false, 0, 1e9},
    {"rpm", AC_T_INT, false, 0, 1e12},
    {"tpm", AC_T_INT, false, 0, 1e15},
    {"fallbacks", AC_T_STRINGS, false, 0, 0},
    {NULL, 0, false, 0, 0},
};

struct ac_provider *ac_core_provider(ac_core *core, const char *name)
{
    for (size_t i = 0; i < core->nproviders; i++)
        if (strcmp(core->providers[i]->name, name) == 0)
            return core->providers[i];
    return NULL;
}

static void model_clear(ac_model *m)
{
    ac_free(m->name);
    ac_free(m->provider_name);
    ac_free(m->upstream);
    json_decref(m->tags);
    json_decref(m->fallbacks);
    memset(m, 0, sizeof *m);
}

int ac_models_parse(ac_core *core, const json_t *arr, const char *path)
{
    char p[256], q[320];
    size_t i, n;
    json_t *e;

    if (!json_is_array(arr))
        return ac_err(AC_EINVAL, "%s: expected an array", path);
    n = json_array_size(arr);
    core->models = ac_calloc(n ? n : 1, sizeof *core->models);
    if (core->models == NULL)
        return ac_err(AC_ENOMEM, "out of memory");
    json_array_foreach(arr, i, e) {
        ac_model *m = &core->models[i];
        const char *pname;
        json_t *caps, *c;
        size_t k;
        int rc;

        ac_path_index(p, sizeof p, path, i);
        rc = ac_cfg_check(e, p, model_fields);
        if (rc)
            return rc;
        if (json_string_length(json_object_get(e, "name")) == 0)
            return ac_err(AC_EINVAL, "%s: must not be empty", ac_path_join(q, sizeof q, p, "name"));
        if (ac_model_find(core, json_string_value(json_object_get(e, "name"))))
            return ac_err(AC_EINVAL, "%s: duplicate model name \"%s\"",
                          ac_path_join(q, sizeof q, p, "name"),
                          json_string_value(json_object_get(e, "name")));
        pname = json_string_value(json_object_get(e, "provider"));
        m->provider = ac_core_provider(core, pname);
        if (m->provider == NULL)
            return ac_err(AC_EINVAL, "%s: no provider named \"%s\" in providers",
                          ac_path_join(q, sizeof q, p, "provider"), pname);
        core->nmodels = i + 1;   /* from here on ac_models_free releases this entry */
        m->name = ac_strdup(json_string_value(json_object_get(e, "name")));
        m->provider_name = ac_strdup(pname);
        m->upstream = ac_strdup(json_string_value(json_object_get(e, "model")));
        m->context_window = (long)ac_json_int(e, "context_window", 0);
        m->max_output_tokens = (long)ac_json_int(e, "max_output_tokens", 0);
        m->price_in = ac_json_num(e, "price_input", 0);
        m->price_out = ac_json_num(e, "price_output", 0);
        m->price_cached = ac_json_num(e, "price_cached_input", m->price_in);
        m->weight = ac_json_num(e, "weight", 1.0);
        m->rpm = (long)ac_json_int(e, "rpm", 0);
        m->tpm = (long)ac_json_int(e, "tpm", 0);
        m->tags = json_object_get(e, "tags") ? json_deep_copy(json_object_get(e, "tags"))
                                             : json_array();
        if (json_is_array(json_object_get(e, "fallbacks")) &&
            (m->fallbacks = json_deep_copy(json_object_get(e, "fallbacks"))) == NULL)
            return ac_err(AC_ENOMEM, "out of memory");
        caps = json_object_get(e, "capabilities");
        if (!json_is_array(caps)) {   /* absent or null: the default */
            m->caps = AC_CAP_TOOLS | AC_CAP_JSON;
        } else {
            json_array_foreach(caps, k, c) {
                const char *s = json_string_value(c);
                if (strcmp(s, "tools") == 0)
                    m->caps |= AC_CAP_TOOLS;
                else if (strcmp(s, "vision") == 0)
                    m->caps |= AC_CAP_VISION;
                else if (strcmp(s, "json") == 0)
                    m->caps |= AC_CAP_JSON;
                else {
                    char r[352];
                    ac_path_join(q, sizeof q, p, "capabilities");
                    return ac_err(AC_EINVAL, "%s: unknown capability \"%s\" (expected tools, vision or json)",
                                  ac_path_index(r, sizeof r, q, k), s);
                }
            }
        }
        if (!m->name || !m->provider_name || !m->upstream || !m->tags)
            return ac_err(AC_ENOMEM, "out of memory");
        core->nmodels = i + 1;
    }
    return AC_OK;
}

void ac_models_free(ac_core *core)
{
    for (size_t i = 0; i < core->nmodels; i++)
        model_clear(&core->models[i]);
    ac_free(core->models);
    core->models = NULL;
    core->nmodels = 0;
}

json_t *ac_models_to_json(const ac_core *core)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < core->nmodels; i++) {
        const ac_model *m = &core->models[i];
        json_t *caps = json_array();
        if (m->caps & AC_CAP_TOOLS)
            json_array_append_new(caps, json_string("tools"));
        if (m->caps & AC_CAP_VISION)
            json_array_append_new(caps, json_string("vision"));
        if (m->caps & AC_CAP_JSON)
            json_array_append_new(caps, json_string("json"));
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:o, s:O, s:f, s:I, s:I}",
                           "name", m->name, "provider", m->provider_name, "model", m->upstream,
                           "context_window", (json_int_t)m->context_window, "max_output_tokens",
                           (json_int_t)m->max_output_tokens, "price_input", m->price_in,
                           "price_output", m->price_out, "price_cached_input", m->price_cached,
                           "capabilities", caps, "tags", m->tags, "weight", m->weight, "rpm",
                           (json_int_t)m->rpm, "tpm", (json_int_t)m->tpm));
        if (m->fallbacks)
            json_object_set(json_array_get(arr, json_array_size(arr) - 1), "fallbacks",
                            m->fallbacks);
    }
    return arr;
}

const ac_model *ac_model_find(const ac_core *core, const char *name)
{
    for (size_t i = 0; i < core->nmodels; i++)
        if (core->models[i].name && strcmp(core->models[i].name, name) == 0)
            return &core->models[i];
    return NULL;
}

int ac_model_resolve(ac_core *core, const char *requested, ac_model *tmp, const ac_model **out)
{
    const ac_model *m = ac_model_find(core, requested);
    const char *slash;
    if (m) {
        *out = m;
        return AC_OK;
    }
    slash = strchr(requested, '/');
    if (slash && slash != requested && slash[1]) {
        char pname[128];
        size_t n = (size_t)(slash - requested);
        if (n < sizeof pname) {
            memcpy(pname, requested, n);
            pname[n] = '\0';
            struct ac_provider *p = ac_core_provider(core, pname);
            if (p) {
                memset(tmp, 0, sizeof *tmp);
                tmp->name = (char *)requested;
                tmp->provider_name = p->name;
                tmp->provider = p;
                tmp->upstream = (char *)(slash + 1);
                tmp->caps = AC_CAP_TOOLS | AC_CAP_JSON | AC_CAP_VISION;
                tmp->weight = 1;
                *out = tmp;
                return AC_OK;
            }
        }
    }
    {
        ac_buf b = AC_BUF_INIT;
        for (size_t i = 0; i < core->nmodels; i++)
            ac_buf_printf(&b, "%s%s", b.len ? ", " : "", core->models[i].name);
        for (size_t i = 0; i < core->nproviders; i++)
            ac_buf_printf(&b, "%s%s/<model>", b.len ? ", " : "", core->providers[i]->name);
        ac_err(AC_ENOTFOUND, "model \"%s\" not found (known: %s)", requested,
               b.len ? b.data : "none configured");
        ac_buf_free(&b);
        return AC_ENOTFOUND;
    }
}
