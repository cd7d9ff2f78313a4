module github.com/peer-registry/peer-registry/tests/crowd/go

go 1.19

require github.com/peer-registry/peer-registry/bindings/go/peerregistry v0.0.0

replace github.com/peer-registry/peer-registry/bindings/go/peerregistry => ../../../bindings/go
