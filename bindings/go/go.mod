module github.com/peer-registry/peer-registry/bindings/go/peerregistry

go 1.19
