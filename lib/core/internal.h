/* Internal helpers shared by every part of the library. Not installed.
 *
 * Errors:  return ac_err(AC_EINVAL, "models[2].name: expected a string");
 *          sets the thread-local message read by ac_errmsg() and returns the code.
 * Memory:  ac_malloc/ac_calloc/ac_realloc/ac_strdup go through one place, so
 *          that tests can fail the Nth allocation (ac__fail_alloc_after).
 * Buffers: ac_buf, a growable NUL-terminated byte buffer.
 * JSON:    jansson json_t everywhere inside; ac_cfg_check validates config
 *          objects against a field table and names the JSON path on error.
 */
#ifndef AC_INTERNAL_H
#define AC_INTERNAL_H

#include "agentcore.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define AC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define AC_UNUSED __attribute__((unused))
#else
#define AC_PRINTF(a, b)
#define AC_UNUSED
#endif

#define AC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- errors ---------------------------------------------------------- */

/* Set this thread's error message (printf-style) and return code. */
int ac_err(int code, const char *fmt, ...) AC_PRINTF(2, 3);
int ac_verr(int code, const char *fmt, va_list ap);
/* Prefix the current message: "prefix: <old message>"; returns code. */
int ac_err_prefix(int code, const char *fmt, ...) AC_PRINTF(2, 3);
/* Clear this thread's message (successful public calls start with this). */
void ac_err_clear(void);

/* ---- memory ---------------------------------------------------------- */

void *ac_malloc(size_t n);
void *ac_calloc(size_t count, size_t size);
void *ac_realloc(void *p, size_t n);
char *ac_strdup(const char *s);
char *ac_strndup(const char *s, size_t n);
char *ac_asprintf(const char *fmt, ...) AC_PRINTF(1, 2);
/* Test hook: when > 0, the Nth following allocation fails (counting down).
 * 0 (the default) means never. Not exported. */
extern long ac__fail_alloc_after;

/* ---- growable buffer -------------------------------------------------- */

typedef struct ac_buf {
    char *data;   /* always NUL-terminated when cap > 0 */
    size_t len;
    size_t cap;
} ac_buf;

#define AC_BUF_INIT {NULL, 0, 0}
int ac_buf_reserve(ac_buf *b, size_t extra);           /* AC_OK or AC_ENOMEM */
int ac_buf_append(ac_buf *b, const void *data, size_t n);
int ac_buf_puts(ac_buf *b, const char *s);
int ac_buf_printf(ac_buf *b, const char *fmt, ...) AC_PRINTF(2, 3);
void ac_buf_reset(ac_buf *b);                          /* len = 0, keeps memory */
void ac_buf_free(ac_buf *b);
/* Hand the data to the caller (free with ac_free/free); the buffer is emptied. */
char *ac_buf_steal(ac_buf *b);

/* ---- JSON helpers ----------------------------------------------------- */

/* Borrowed getters with defaults when the key is absent or null. */
const char *ac_json_str(const json_t *obj, const char *key, const char *def);
long long ac_json_int(const json_t *obj, const char *key, long long def);
double ac_json_num(const json_t *obj, const char *key, double def);
int ac_json_bool(const json_t *obj, const char *key, int def);
/* Parse text into a JSON value; on failure sets an AC_EINVAL message
 * "WHAT: invalid JSON at line L column C: reason" and returns NULL.
 * flags are jansson decode flags (JSON_REJECT_DUPLICATES is always added). */
json_t *ac_json_parse(const char *text, size_t len, const char *what, size_t flags);
/* Dump compactly into a string from ac_malloc; NULL on ENOMEM (error set). */
char *ac_json_dump(const json_t *v);

/* Config validation. A table of fields, ended by {NULL}. */
typedef enum {
    AC_T_STRING = 1,
    AC_T_INT,       /* JSON integer */
    AC_T_NUMBER,    /* integer or real */
    AC_T_BOOL,
    AC_T_OBJECT,
    AC_T_ARRAY,
    AC_T_STRINGS,   /* array of strings */
    AC_T_ANY
} ac_type;

typedef struct ac_field {
    const char *key;
    ac_type type;
    bool required;
    double min, max;  /* for INT/NUMBER when min < max: inclusive range */
} ac_field;

/* Check obj (must be an object) against fields: unknown keys, wrong types,
 * missing required keys and out-of-range numbers are AC_EINVAL with a message
 * "PATH.key: expected a string" / "PATH: unknown key \"x\"" and so on.
 * path is the JSON path of obj ("" for the root; keys are joined with '.',
 * array indices written as [i]). */
int ac_cfg_check(const json_t *obj, const char *path, const ac_field *fields);
/* Build "path.key" or "key" (when path is empty) into buf. */
const char *ac_path_join(char *buf, size_t cap, const char *path, const char *key);
/* Build "path[i]" into buf. */
const char *ac_path_index(char *buf, size_t cap, const char *path, size_t i);

/* ---- time and randomness ---------------------------------------------- */

uint64_t ac_now_us(void);          /* monotonic microseconds */
int64_t ac_wall_ms(void);          /* Unix time in milliseconds */
uint64_t ac_rand64(void);          /* thread-local xorshift, seeded once */
double ac_rand01(void);            /* uniform in [0, 1) */

/* Token estimates (lib/core/tokens.c), the one estimator for context
 * fitting, routing checks and usage without provider counts:
 * text ceil(bytes / 4); a message 4 + its content (an image counts
 * AC_IMAGE_TOKENS) + 8 + name + arguments per tool call; a request the sum
 * of its messages + AC_REQUEST_TOKENS + its tools' JSON / 4. */
#define AC_IMAGE_TOKENS 765   /* a high-detail 1024x1024 image, as OpenAI counts it */
#define AC_REQUEST_TOKENS 3   /* reply priming */
long ac_estimate_tokens(const char *text, size_t len);
long ac_content_tokens(const json_t *content);
long ac_message_tokens(const json_t *message);
long ac_tools_tokens(const json_t *tools);

/* ---- logging ------------------------------------------------------------ */

typedef struct ac_logger {
    ac_log_fn fn;
    void *userdata;
    int level;
} ac_logger;

void ac_logf(const ac_logger *lg, int level, const char *fmt, ...) AC_PRINTF(3, 4);

/* ---- UTF-8 ------------------------------------------------------------------ */

/* 1 when [s, s+n) is valid UTF-8 (no overlongs, no surrogates). */
int ac_utf8_valid(const char *s, size_t n);

#endif
