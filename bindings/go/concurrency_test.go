package peerregistry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

// Eight goroutines share one Registry and mix every operation; run with -race. Each owns its
// own ids, so the final state is known exactly, and each reads the others' entries while
// they change.
func TestSharedRegistryUnderConcurrency(t *testing.T) {
	reg, _ := openTemp(t)
	ctx := context.Background()
	watchCtx, stopWatch := context.WithCancel(ctx)
	w, err := reg.Watch(watchCtx)
	if err != nil {
		t.Fatal(err)
	}
	var watched sync.WaitGroup
	watched.Add(1)
	events := 0
	go func() {
		defer watched.Done()
		for range w.Events() {
			events++
		}
	}()

	const workers, rounds = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			fail := func(format string, args ...any) {
				errs <- fmt.Errorf("worker %d: "+format, append([]any{g}, args...)...)
			}
			for i := 0; i < rounds; i++ {
				id := fmt.Sprintf("w%d-%d", g, i%3)
				tool := "tool-" + id // declared by this id only
				if _, err := reg.Register(ctx, peerregistry.Entry{ID: id, URL: fmt.Sprintf("http://127.0.0.1:%d/mcp", 1000+g),
					Capabilities: peerregistry.Capabilities{Tools: []string{tool, "shared"}},
					Metadata:     map[string]any{"round": float64(i)}}); err != nil {
					fail("Register %s: %v", id, err)
					return
				}
				got, err := reg.Get(id)
				if err != nil || got.Metadata["round"] != float64(i) {
					fail("Get %s = %+v, %v", id, got.Metadata, err)
					return
				}
				if err := reg.SetHealth(ctx, id, peerregistry.StatusHealthy, fmt.Sprint(i)); err != nil {
					fail("SetHealth: %v", err)
					return
				}
				if err := reg.Heartbeat(ctx, id); err != nil {
					fail("Heartbeat: %v", err)
					return
				}
				if _, err := reg.List(peerregistry.Filter{Tool: "shared"}); err != nil {
					fail("List: %v", err)
					return
				}
				if e, err := reg.ResolveTool(tool); err != nil || e.ID != id {
					fail("ResolveTool(%s) = %s, %v", tool, e.ID, err)
					return
				}
				// Several healthy servers declare "shared": a tie or, between writes, one of them.
				if _, err := reg.ResolveTool("shared"); err != nil && !errors.Is(err, peerregistry.ErrAmbiguous) {
					fail("ResolveTool(shared): %v", err)
					return
				}
				if i%5 == 4 {
					if err := reg.Unregister(ctx, id); err != nil {
						fail("Unregister %s: %v", id, err)
						return
					}
					if _, err := reg.Prune(ctx); err != nil {
						fail("Prune: %v", err)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Each id's last operation decides: live if its last round registered it, gone if that
	// round also unregistered it.
	want := map[string]bool{}
	for g := 0; g < workers; g++ {
		for i := 0; i < rounds; i++ {
			id := fmt.Sprintf("w%d-%d", g, i%3)
			want[id] = i%5 != 4
		}
	}
	res, err := reg.List(peerregistry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range res.Servers {
		got[e.ID] = true
		if e.Health.Status != peerregistry.StatusHealthy {
			t.Errorf("%s ends with health %q", e.ID, e.Health.Status)
		}
	}
	for id, live := range want {
		if got[id] != live {
			t.Errorf("%s: live=%v, want %v", id, got[id], live)
		}
	}
	if len(got) != countTrue(want) {
		t.Errorf("registry holds %d entries, want %d: %v", len(got), countTrue(want), ids(res.Servers))
	}
	stopWatch()
	watched.Wait()
	if events == 0 {
		t.Error("the watcher saw no events during the run")
	}
}

func countTrue(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}
