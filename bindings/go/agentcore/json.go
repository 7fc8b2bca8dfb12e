package agentcore

import (
	"encoding/json"
	"fmt"
)

// Object is a decoded JSON object.
type Object = map[string]any

// jsonArg turns a request or options value into JSON text: "" for nil (the
// generated wrappers pass NULL for "" to nullable parameters), the text
// itself for string, []byte and json.RawMessage, json.Marshal otherwise.
func jsonArg(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case json.RawMessage:
		return string(x), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("agentcore: encoding JSON argument: %w", err)
	}
	return string(b), nil
}

// decode parses JSON text returned by the library.
func decode[T any](text string, err error) (T, error) {
	var v T
	if err != nil {
		return v, err
	}
	if text == "" {
		return v, nil
	}
	if e := json.Unmarshal([]byte(text), &v); e != nil {
		return v, fmt.Errorf("agentcore: decoding the library's JSON: %w", e)
	}
	return v, nil
}
