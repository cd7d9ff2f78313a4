package peerregistry_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

const eventTimeout = 5 * time.Second

func TestWatchSeesAnotherProcessRegisterAndDie(t *testing.T) {
	reg, path := openTemp(t)
	w, err := reg.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	child := startHolder(t, path, peerregistry.Entry{ID: "child", URL: "http://127.0.0.1:9/mcp",
		Capabilities: peerregistry.Capabilities{Tools: []string{"childTool"}}})
	ev := waitForEvent(t, w, eventTimeout, func(ev peerregistry.Event) bool { return hasID(ev.Added, "child") })
	for _, e := range ev.Added {
		if e.ID == "child" && e.PID != child.cmd.Process.Pid {
			t.Errorf("added entry has pid %d, want the child's %d", e.PID, child.cmd.Process.Pid)
		}
	}
	if got, err := reg.ResolveTool("childTool"); err != nil || got.ID != "child" {
		t.Fatalf("ResolveTool(childTool) = %v, %v", got.ID, err)
	}

	// SIGKILL: no chance to unregister. The kernel drops the lease, and with it the entry.
	if err := child.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.cmd.Wait()
	_, err = reg.Get("child")
	wantCode(t, err, peerregistry.ErrNotFound)
	_, err = reg.ResolveTool("childTool")
	wantCode(t, err, peerregistry.ErrNotFound)
	res, err := reg.List(peerregistry.Filter{})
	if err != nil || hasID(res.Servers, "child") {
		t.Fatalf("List still has the dead child: %v, %v", ids(res.Servers), err)
	}
	ev = waitForEvent(t, w, eventTimeout, func(ev peerregistry.Event) bool { return hasID(ev.Removed, "child") })
	for _, e := range ev.Removed {
		if e.ID == "child" && e.URL != "http://127.0.0.1:9/mcp" {
			t.Errorf("removed holds %+v, want the last entry seen", e)
		}
	}
}

func TestWatchReportsAddedChangedRemoved(t *testing.T) {
	reg, _ := openTemp(t)
	ctx := context.Background()
	w, err := reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	mustRegister(t, reg, peerregistry.Entry{ID: "svc", URL: "http://127.0.0.1:1/mcp"})
	added := waitForEvent(t, w, eventTimeout, func(ev peerregistry.Event) bool { return hasID(ev.Added, "svc") })

	if err := reg.SetHealth(ctx, "svc", peerregistry.StatusHealthy, "fine"); err != nil {
		t.Fatal(err)
	}
	changed := waitForEvent(t, w, eventTimeout, func(ev peerregistry.Event) bool { return hasID(ev.Changed, "svc") })
	if changed.Generation <= added.Generation {
		t.Errorf("generation did not increase: %d then %d", added.Generation, changed.Generation)
	}
	if changed.Changed[0].Health.Status != peerregistry.StatusHealthy {
		t.Errorf("changed entry is not the new version: %+v", changed.Changed[0].Health)
	}

	if err := reg.Unregister(ctx, "svc"); err != nil {
		t.Fatal(err)
	}
	removed := waitForEvent(t, w, eventTimeout, func(ev peerregistry.Event) bool { return hasID(ev.Removed, "svc") })
	if removed.Removed[0].Health.Status != peerregistry.StatusHealthy {
		t.Errorf("removed entry is not the last version seen: %+v", removed.Removed[0])
	}
}

func TestWatchBaselineIsNotReplayed(t *testing.T) {
	reg, _ := openTemp(t)
	mustRegister(t, reg, peerregistry.Entry{ID: "existing", URL: "http://127.0.0.1:1/mcp"})
	w, err := reg.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	mustRegister(t, reg, peerregistry.Entry{ID: "new", URL: "http://127.0.0.1:2/mcp"})
	ev := nextEvent(t, w, eventTimeout)
	if hasID(ev.Added, "existing") || !hasID(ev.Added, "new") {
		t.Fatalf("first event added %v, want only the new entry", ids(ev.Added))
	}
}

func TestWatchCancelClosesChannel(t *testing.T) {
	reg, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := reg.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-w.Events():
		if ok {
			t.Fatal("got an event after cancel, want the channel closed")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("channel not closed within 2s of cancel")
	}
	if w.Err() != context.Canceled {
		t.Fatalf("Err() = %v, want context.Canceled", w.Err())
	}
	if err := w.Close(); err != nil { // after the goroutine already closed the handle
		t.Fatal(err)
	}
}

func TestWatchCloseWhileEventPending(t *testing.T) {
	reg, _ := openTemp(t)
	w, err := reg.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mustRegister(t, reg, peerregistry.Entry{ID: "svc", URL: "http://127.0.0.1:1/mcp"})
	time.Sleep(300 * time.Millisecond) // the goroutine now blocks sending an event nobody reads
	done := make(chan struct{})
	go func() {
		w.Close()
		w.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close blocked")
	}
	if _, ok := <-w.Events(); ok {
		t.Fatal("channel still open after Close")
	}
	if w.Err() != nil {
		t.Fatalf("Err() after Close = %v, want nil", w.Err())
	}
}

func TestWatchOutlivesItsRegistry(t *testing.T) {
	reg, path := openTemp(t)
	w, err := reg.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	reg.Close()
	writer := openAt(t, path)
	mustRegister(t, writer, peerregistry.Entry{ID: "later", URL: "http://127.0.0.1:1/mcp"})
	waitForEvent(t, w, eventTimeout, func(ev peerregistry.Event) bool { return hasID(ev.Added, "later") })
}

func TestWatchCoalescesWhileNobodyReads(t *testing.T) {
	reg, _ := openTemp(t)
	w, err := reg.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	want := map[string]bool{}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		mustRegister(t, reg, peerregistry.Entry{ID: id, URL: "http://127.0.0.1:1/mcp"})
		want[id] = true
	}
	// Nothing is lost: every registration shows up as added, in however few events.
	deadline := time.Now().Add(eventTimeout)
	for len(want) > 0 {
		ev := nextEvent(t, w, time.Until(deadline))
		for _, e := range ev.Added {
			delete(want, e.ID)
		}
	}
}
