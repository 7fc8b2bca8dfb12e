/* Session handles and the chat turn. */
#ifndef AC_AGENT_TURN_H
#define AC_AGENT_TURN_H

#include "../memory/session.h"

/* 1 if an open handle of this core has a turn running on session id. */
int ac__session_is_busy(ac_core *core, const char *id);
/* The stored messages as the JSON array ac_session_messages returns. */
json_t *ac__msgs_json(const ac_msgs *m, size_t from);
/* Close every open session handle of a core (from ac_core_close). */
void ac__sessions_close_all(ac_core *core);

#endif
