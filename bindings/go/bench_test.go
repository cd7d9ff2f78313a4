package peerregistry_test

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

// The trivial call through the same path as every other (one cgo crossing): the floor under
// each method's cost.
func BenchmarkVersionNumber(b *testing.B) {
	if _, err := peerregistry.VersionNumber(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := peerregistry.VersionNumber(); err != nil {
			b.Fatal(err)
		}
	}
}

// Get of one entry among 100 in an unchanged file: the library's stat + hash lookup, two cgo
// crossings (the call, peerreg_free) and decoding the JSON into an Entry.
func BenchmarkGet(b *testing.B) {
	reg, _ := openTemp(b)
	for i := 0; i < 100; i++ {
		mustRegister(b, reg, peerregistry.Entry{ID: fmt.Sprintf("svc-%d", i), URL: fmt.Sprintf("http://127.0.0.1:%d/mcp", 2000+i),
			Capabilities: peerregistry.Capabilities{Tools: []string{fmt.Sprintf("tool-%d", i)}}})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := reg.Get("svc-42"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResolveTool(b *testing.B) {
	reg, _ := openTemp(b)
	for i := 0; i < 100; i++ {
		mustRegister(b, reg, peerregistry.Entry{ID: fmt.Sprintf("svc-%d", i), URL: fmt.Sprintf("http://127.0.0.1:%d/mcp", 2000+i),
			Capabilities: peerregistry.Capabilities{Tools: []string{fmt.Sprintf("tool-%d", i)}}})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := reg.ResolveTool("tool-42"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRegisterUnregister(b *testing.B) {
	reg, _ := openTemp(b)
	ctx := context.Background()
	e := peerregistry.Entry{ID: "bench", URL: "http://127.0.0.1:1/mcp"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := reg.Register(ctx, e); err != nil {
			b.Fatal(err)
		}
		if err := reg.Unregister(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// Loading the library (dlopen + symbols + version check + the first call), measured inside
// fresh processes, since a process loads it once. Reported as the median, in ns/load.
func BenchmarkLoadLibrary(b *testing.B) {
	var samples []time.Duration
	for i := 0; i < b.N; i++ {
		out, err := helperCommand(b, "loadtime").Output()
		if err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		ns, err := strconv.ParseInt(string(out), 10, 64)
		if err != nil {
			b.Fatalf("helper printed %q", out)
		}
		samples = append(samples, time.Duration(ns))
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "ns/load")
}
