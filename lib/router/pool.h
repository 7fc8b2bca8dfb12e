/* The model pool: the config's "models" list (aliases for provider models),
 * with what the router needs to choose among them. */
#ifndef AC_ROUTER_POOL_H
#define AC_ROUTER_POOL_H

#include "../core/core.h"

#define AC_CAP_TOOLS  1u
#define AC_CAP_VISION 2u
#define AC_CAP_JSON   4u

struct ac_model {
    char *name;                 /* the alias callers use */
    char *provider_name;
    struct ac_provider *provider;   /* borrowed from the core */
    char *upstream;             /* the provider's model id */
    long context_window;        /* tokens; 0 = unknown */
    long max_output_tokens;     /* 0 = unknown */
    double price_in;            /* USD per 1M input tokens */
    double price_out;           /* USD per 1M output tokens */
    double price_cached;        /* USD per 1M cached input tokens */
    unsigned caps;              /* AC_CAP_* */
    json_t *tags;               /* array of strings (own reference) */
    double weight;
    long rpm, tpm;              /* 0 = unlimited */
    json_t *fallbacks;          /* array of model names (own reference) or NULL;
                                 * checked by the router, which may override it */
};

/* Parse the "models" array; providers must already be loaded. */
int ac_models_parse(ac_core *core, const json_t *arr, const char *path);
void ac_models_free(ac_core *core);
json_t *ac_models_to_json(const ac_core *core);

/* Find a model by alias; NULL if none. */
const ac_model *ac_model_find(const ac_core *core, const char *name);

/* Resolve what a request names: an alias from the pool, or "provider/model"
 * for a provider from the config (then *tmp is filled and returned, with
 * capabilities unknown). AC_ENOTFOUND with a message listing what exists. */
int ac_model_resolve(ac_core *core, const char *requested, ac_model *tmp, const ac_model **out);

#endif
