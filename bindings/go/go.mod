module github.com/libagentcore/agentcore-go

go 1.22
