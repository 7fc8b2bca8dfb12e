/* Validation of canonical requests (OpenAI chat-completions and embeddings
 * shapes) before anything is sent: errors name the JSON path. */
#ifndef AC_AGENT_REQUEST_H
#define AC_AGENT_REQUEST_H

#include "../core/internal.h"

/* Check a chat request. Accepts the OpenAI request keys (as in the OpenAPI
 * description) plus the OpenAI-compatible extras top_k, min_p and
 * repetition_penalty; anything else is rejected by name. */
int ac_check_chat_request(const json_t *req);
/* Check the messages array alone (path "messages"). */
int ac_check_messages(const json_t *messages, const char *path);
/* Check an embeddings request; on success *texts is a new array of the
 * input strings (new reference). */
int ac_check_embed_request(const json_t *req, json_t **texts);

#endif
