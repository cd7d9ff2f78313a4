package peerregistry

import (
	"context"
	"encoding/json"
	"sync"
)

// watchPollMS bounds each wait inside the library, so that a cancelled context or Close is
// noticed within this many milliseconds. A change is still delivered as soon as it happens:
// the library returns from its wait at once.
const watchPollMS = 100

// Watcher delivers the registry's changes on a channel. Create one with Registry.Watch.
type Watcher struct {
	events   chan Event
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	mu  sync.Mutex
	err error
}

// Watch starts watching the registry. Events are differences against the last state this
// watcher saw, so bursts of writes are coalesced and never missed; the state at Watch is the
// baseline (the first event is not a replay). The Events channel is unbuffered: while nobody
// receives, the library keeps coalescing.
//
// The channel is closed when ctx is done, when Close is called, or when the library reports
// an error; Err then says which. The watcher keeps working after the Registry is closed.
// Either cancel ctx or call Close, or its goroutine runs for the life of the process.
func (r *Registry) Watch(ctx context.Context) (*Watcher, error) {
	return r.WatchFiltered(ctx, Filter{})
}

// WatchFiltered is Watch for the entries f selects, with List's Filter (the zero Filter is
// Watch). An entry that stops matching f is reported as removed. With Scope ScopeCluster the
// other machines' entries (docs/CLUSTER.md) are watched too: each is identified by its node
// ("node" in Extra) and id, so the same id on two nodes is two entries. A bad filter (an
// unknown Scope, Status or Transport) is ErrInvalid. A non-zero Filter needs
// libpeerregistry >= 0.2.0.
func (r *Registry) WatchFiltered(ctx context.Context, f Filter) (*Watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	filter, err := filterJSON(f)
	if err != nil {
		return nil, err
	}
	var handle *cWatch
	err = r.call(func(h *cRegistry) (err error) {
		if filter == nil { // peerreg_watch_open: every library has it
			handle, err = cWatchOpen(h)
		} else {
			handle, err = cWatchOpenFiltered(h, filter)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	w := &Watcher{
		events: make(chan Event),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go w.run(ctx, handle)
	return w, nil
}

// Events returns the channel of changes. It is closed when the watcher stops.
func (w *Watcher) Events() <-chan Event { return w.events }

// Err returns why the watcher stopped: nil while it runs or after Close, ctx.Err() after the
// context was done, or the library's error.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close stops the watcher and waits until its goroutine has closed the library's watch
// handle and the Events channel. Closing again is a no-op.
func (w *Watcher) Close() error {
	w.stopOnce.Do(func() { close(w.stop) })
	<-w.done
	return nil
}

func (w *Watcher) fail(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

// run owns the library's watch handle: only this goroutine touches it (a peerreg_watch is
// for one thread at a time), and it closes it exactly once, before closing the channel.
func (w *Watcher) run(ctx context.Context, handle *cWatch) {
	defer close(w.done)
	defer close(w.events)
	defer cWatchClose(handle)
	for {
		select {
		case <-ctx.Done():
			w.fail(ctx.Err())
			return
		case <-w.stop:
			return
		default:
		}
		data, err := cWatchNext(handle, watchPollMS)
		if err != nil {
			w.fail(err)
			return
		}
		if data == nil {
			continue
		}
		var ev Event
		if err := json.Unmarshal(data, &ev); err != nil {
			w.fail(decodeError(err))
			return
		}
		select {
		case w.events <- ev:
		case <-ctx.Done():
			w.fail(ctx.Err())
			return
		case <-w.stop:
			return
		}
	}
}
