/* Conversation sessions: persisted history, metadata, running summaries,
 * and context fitting. Storage is the core's SQLite database (tables
 * sessions / session_messages). Everything runs on the core's thread. */
#ifndef AC_MEMORY_SESSION_H
#define AC_MEMORY_SESSION_H

#include "../core/db.h"

/* One stored message. */
typedef struct ac_msg {
    long long seq;          /* position in the session, from 1 */
    json_t *message;        /* canonical OpenAI message object (own ref) */
    long tokens;            /* estimate */
    char *model;            /* model that produced it (assistant), or NULL */
    long long turn;         /* the turn that added it */
} ac_msg;

typedef struct ac_msgs {
    ac_msg *v;
    size_t n, cap;
} ac_msgs;

void ac_msgs_free(ac_msgs *m);

/* Session row. */
typedef struct ac_session_row {
    char *id;
    char *tenant;
    char *title;
    json_t *tags;           /* array */
    json_t *metadata;       /* object */
    char *profile;          /* agent profile name or NULL */
    char *model;            /* preferred model or NULL */
    char *summary;          /* running summary text or NULL */
    long long summary_upto; /* messages with seq <= this are in the summary */
    long long created_ms, updated_ms;
    long long msg_count;
    long long last_seq;
    long long turns;
} ac_session_row;

void ac_session_row_clear(ac_session_row *r);

int ac_sessions_migrate(sqlite3 *db);

/* Estimated tokens of one canonical message (content, tool calls, overhead). */
long ac_msg_tokens(const json_t *message);

/* Load a session row; AC_ENOTFOUND when missing or of another tenant. */
int ac_session_load(sqlite3 *db, const char *tenant, const char *id, ac_session_row *out);
/* Insert a new session row (id must be unique). */
int ac_session_insert(sqlite3 *db, const ac_session_row *row);
/* Load messages with seq > after (all when after = 0), in order. */
int ac_session_load_messages(sqlite3 *db, const char *id, long long after, ac_msgs *out);
/* Delete a session and its messages. AC_ENOTFOUND when missing / other tenant. */
int ac_session_delete_row(sqlite3 *db, const char *tenant, const char *id);

/* New random session id "sess_" + 24 hex chars. Caller frees. */
char *ac_session_new_id(void);

/* ---- context fitting ------------------------------------------------------ */

typedef enum { AC_FIT_LAST_N = 1, AC_FIT_TOKENS, AC_FIT_SUMMARY } ac_fit_policy;

typedef struct ac_fit_in {
    const ac_msgs *history;   /* stored messages, oldest first */
    long fixed_tokens;        /* system prompt + facts + new messages */
    long window;              /* model context window (0 = unknown: no token limit) */
    long reserve;             /* tokens kept free for the answer */
    ac_fit_policy policy;
    long last_n;              /* for AC_FIT_LAST_N: most messages kept (0 = no count limit) */
    long summary_tokens;      /* tokens of the stored summary (when policy is SUMMARY) */
} ac_fit_in;

typedef struct ac_fit_out {
    size_t first;             /* index into history of the first message kept */
    long tokens;              /* tokens of the kept history */
    int dropped;              /* 1 if older messages were left out */
    int overflow;             /* 1 if even the fixed part does not fit */
} ac_fit_out;

/* Choose the newest messages that fit. Messages are kept in "units": an
 * assistant message with tool_calls and the tool results that answer it are
 * kept or dropped together, never separated; a leading run of tool messages
 * whose call was dropped is dropped too. */
void ac_fit(const ac_fit_in *in, ac_fit_out *out);

/* ---- templates ---------------------------------------------------------- */

/* Render "{name}" placeholders from vars (an object of strings / numbers /
 * bools). "{{" and "}}" are literal braces. An unknown variable or an
 * unterminated placeholder is AC_EINVAL naming it and its byte offset. */
int ac_template_render(const char *tmpl, const json_t *vars, char **out);

#endif
