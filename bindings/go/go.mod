module github.com/peer-registry/peer-registry/bindings/go

go 1.19
