module github.com/libagentcore/agentcore-go/examples

go 1.22

require github.com/libagentcore/agentcore-go v0.0.0

replace github.com/libagentcore/agentcore-go => ../../bindings/go
