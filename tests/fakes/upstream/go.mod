module agentcore.dev/fakeupstream

go 1.22
