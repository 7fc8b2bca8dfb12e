/* Helpers shared by the provider tests (tests/providers/). */
#ifndef AC_TEST_PROVIDERS_TP_H
#define AC_TEST_PROVIDERS_TP_H

#include "harness.h"
#include "providers/provider.h"

#ifndef PROV_DATA_DIR
#error "PROV_DATA_DIR must name tests/providers/data"
#endif

/* The whole file PROV_DATA_DIR/rel (NUL-terminated, malloc'd) or NULL. */
char *tp_read(const char *rel, size_t *len);
/* The JSON file PROV_DATA_DIR/rel, or NULL (a parse error is printed). */
json_t *tp_load(const char *rel);
/* Structural comparison. In expected, the string "$any" matches any value
 * that is present. On a difference, writes its JSON path and both values
 * into why and returns 0. */
int tp_match(const json_t *expected, const json_t *actual, char *why, size_t cap);
/* The provider called name in data/providers.json (new; ac_provider_free
 * it) and, if model is not NULL, its test model. NULL if unknown. */
ac_provider *tp_provider(const char *name, const char **model);
/* The provider name of a data file name "NAME__case.ext" (static buffer). */
const char *tp_file_provider(const char *file);
/* Files in PROV_DATA_DIR/sub ending with suffix, sorted; *n entries.
 * Free with tp_free_list. */
char **tp_list(const char *sub, const char *suffix, size_t *n);
void tp_free_list(char **list, size_t n);
/* The AC_E* code called name ("AC_EINVAL"), or 1 when unknown. */
int tp_code(const char *name);
/* The test API key (also put in the environment as TP_TEST_KEY). */
#define TP_KEY "sk-test-0123456789abcdef"

#endif
