package agentcore

import "testing"

func TestGoToolIsCalledByTheModel(t *testing.T) {
	t.Skip("ac_session_attach_tools / ac_tools_* are not in include/agentcore.h yet")
}
