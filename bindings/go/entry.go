package peerregistry

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
)

// Transport is how a server is reached.
type Transport string

const (
	TransportHTTP  Transport = "http"
	TransportSSE   Transport = "sse"
	TransportWS    Transport = "ws"
	TransportStdio Transport = "stdio"
)

// Liveness is how the library decides that an entry's owner is still there.
type Liveness string

const (
	// LivenessLease (the default): alive while the registering handle is open in a live
	// process; the kernel releases the lease however the process dies.
	LivenessLease Liveness = "lease"
	// LivenessPID: alive while Entry.PID runs (with the start time seen at registration).
	LivenessPID Liveness = "pid"
	// LivenessTTL: alive while LastSeen is younger than TTLSeconds; call Heartbeat.
	LivenessTTL Liveness = "ttl"
	// LivenessNone: a static entry, removed only by Unregister.
	LivenessNone Liveness = "none"
)

// HealthStatus is a server's reported health. The zero value "" means StatusUnknown.
type HealthStatus string

const (
	StatusUnknown  HealthStatus = "UNKNOWN"
	StatusHealthy  HealthStatus = "HEALTHY"
	StatusDegraded HealthStatus = "DEGRADED"
	StatusDown     HealthStatus = "DOWN" // DOWN servers never resolve
)

// code maps s to the header's enum; anything else becomes -1 so that the library, not this
// package, rejects it (PEERREG_EINVAL).
func (s HealthStatus) code() int {
	switch s {
	case "", StatusUnknown:
		return healthUnknown
	case StatusHealthy:
		return healthHealthy
	case StatusDegraded:
		return healthDegraded
	case StatusDown:
		return healthDown
	}
	return -1
}

// Capabilities lists what a server declares; resolution uses them.
type Capabilities struct {
	Tools     []string `json:"tools,omitempty"`
	Resources []string `json:"resources,omitempty"` // URI prefixes, e.g. "resource://journey/"
	Prompts   []string `json:"prompts,omitempty"`
	// Extra holds fields this version does not know, kept as they were.
	Extra map[string]json.RawMessage `json:"-"`
}

// Health is the last health reported with SetHealth or found by Probe.
type Health struct {
	Status    HealthStatus `json:"status,omitempty"`
	Message   string       `json:"message,omitempty"`
	LastCheck time.Time    `json:"lastCheck,omitempty"`
	// ConsecutiveFailures counts failed probes since the last success (see Registry.Probe).
	ConsecutiveFailures int `json:"consecutiveFailures,omitempty"`
	// Extra holds fields this version does not know, kept as they were.
	Extra map[string]json.RawMessage `json:"-"`
}

// Entry is one server in the registry (docs/FORMAT.md); its JSON field names are the tags
// below, encoded and decoded by MarshalJSON and UnmarshalJSON. When registering, only ID and URL
// are required; zero-valued fields are left out of the JSON so the library fills in its
// defaults (liveness lease, pid of the caller, startedAt now, health UNKNOWN, transport from
// the URL scheme).
type Entry struct {
	ID              string         `json:"id"`
	Name            string         `json:"name,omitempty"`
	URL             string         `json:"url"`
	Port            int            `json:"port,omitempty"`
	Transport       Transport      `json:"transport,omitempty"`
	PID             int            `json:"pid,omitempty"`
	StartedAt       time.Time      `json:"startedAt,omitempty"`
	LastSeen        time.Time      `json:"lastSeen,omitempty"`
	Liveness        Liveness       `json:"liveness,omitempty"`
	TTLSeconds      int            `json:"ttlSeconds,omitempty"`
	Capabilities    Capabilities   `json:"capabilities,omitempty"`
	Health          Health         `json:"health,omitempty"`
	RequiresSession bool           `json:"requiresSession,omitempty"`
	Metadata        map[string]any `json:"metadata,omitempty"`
	// Extra holds fields this version does not know (written by a newer writer, or by the
	// registrant on purpose), kept as they were: they are written back on Register and the
	// library keeps them in the file.
	Extra map[string]json.RawMessage `json:"-"`
}

// The wire forms are for writing: they leave out the zero values that encoding/json's
// omitempty keeps (time.Time, nested structs), so the library applies its defaults.
type entryWire struct {
	ID              string           `json:"id,omitempty"`
	Name            string           `json:"name,omitempty"`
	URL             string           `json:"url,omitempty"`
	Port            int              `json:"port,omitempty"`
	Transport       Transport        `json:"transport,omitempty"`
	PID             int              `json:"pid,omitempty"`
	StartedAt       *timestamp       `json:"startedAt,omitempty"`
	LastSeen        *timestamp       `json:"lastSeen,omitempty"`
	Liveness        Liveness         `json:"liveness,omitempty"`
	TTLSeconds      int              `json:"ttlSeconds,omitempty"`
	Capabilities    *json.RawMessage `json:"capabilities,omitempty"`
	Health          *json.RawMessage `json:"health,omitempty"`
	RequiresSession bool             `json:"requiresSession,omitempty"`
	Metadata        map[string]any   `json:"metadata,omitempty"`
}

type healthWire struct {
	Status              HealthStatus `json:"status,omitempty"`
	Message             string       `json:"message,omitempty"`
	LastCheck           *timestamp   `json:"lastCheck,omitempty"`
	ConsecutiveFailures int          `json:"consecutiveFailures,omitempty"`
}

type capabilitiesWire struct {
	Tools     []string `json:"tools,omitempty"`
	Resources []string `json:"resources,omitempty"`
	Prompts   []string `json:"prompts,omitempty"`
}

// timestamp is written as the format's "2026-11-21T09:30:00.000Z" (and read as any RFC 3339).
type timestamp time.Time

const timestampLayout = "2006-01-02T15:04:05.000Z07:00"

func newTimestamp(t time.Time) *timestamp {
	if t.IsZero() {
		return nil
	}
	ts := timestamp(t)
	return &ts
}

func (t timestamp) MarshalJSON() ([]byte, error) {
	utc := time.Time(t).UTC()
	if y := utc.Year(); y < 0 || y > 9999 {
		return nil, errors.New("timestamp year outside of range [0,9999]") // as time.Time's own
	}
	return json.Marshal(utc.Format(timestampLayout))
}

// MarshalJSON writes the entry with zero values left out and Extra merged in.
func (e Entry) MarshalJSON() ([]byte, error) {
	w := entryWire{
		ID: e.ID, Name: e.Name, URL: e.URL, Port: e.Port, Transport: e.Transport, PID: e.PID,
		StartedAt: newTimestamp(e.StartedAt), LastSeen: newTimestamp(e.LastSeen),
		Liveness: e.Liveness, TTLSeconds: e.TTLSeconds,
		RequiresSession: e.RequiresSession, Metadata: e.Metadata,
	}
	var err error
	if w.Capabilities, err = optionalObject(e.Capabilities); err != nil {
		return nil, err
	}
	if w.Health, err = optionalObject(e.Health); err != nil {
		return nil, err
	}
	return marshalWithExtra(w, e.Extra)
}

func (c Capabilities) MarshalJSON() ([]byte, error) {
	return marshalWithExtra(capabilitiesWire{Tools: c.Tools, Resources: c.Resources, Prompts: c.Prompts}, c.Extra)
}

func (h Health) MarshalJSON() ([]byte, error) {
	return marshalWithExtra(healthWire{Status: h.Status, Message: h.Message, LastCheck: newTimestamp(h.LastCheck),
		ConsecutiveFailures: h.ConsecutiveFailures}, h.Extra)
}

// optionalObject marshals v, or returns nil when it would be an empty object.
func optionalObject(v any) (*json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil || string(b) == "{}" {
		return nil, err
	}
	raw := json.RawMessage(b)
	return &raw, nil
}

// marshalWithExtra marshals the known fields of wire, then appends each extra field whose
// key wire does not define (sorted, so output is deterministic).
func marshalWithExtra(wire any, extra map[string]json.RawMessage) ([]byte, error) {
	b, err := json.Marshal(wire)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	known := knownKeys(reflect.TypeOf(wire))
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !known[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	buf.Write(b[:len(b)-1]) // without the closing brace
	for _, k := range keys {
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		name, _ := json.Marshal(k)
		buf.Write(name)
		buf.WriteByte(':')
		value := extra[k]
		if len(value) == 0 {
			value = json.RawMessage("null")
		}
		if err := json.Compact(&buf, value); err != nil {
			return nil, &Error{Code: CodeInvalid, Message: "Extra[" + k + "] is not valid JSON: " + err.Error()}
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

var knownKeysCache sync.Map // reflect.Type -> map[string]bool

func knownKeys(t reflect.Type) map[string]bool {
	if m, ok := knownKeysCache.Load(t); ok {
		return m.(map[string]bool)
	}
	m := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	knownKeysCache.Store(t, m)
	return m
}

// Filter selects entries in List. Zero fields do not filter; the zero Filter lists every live
// entry.
type Filter struct {
	// Healthy, when set, keeps entries whose health is (true) or is not (false) HEALTHY.
	Healthy   *bool        `json:"healthy,omitempty"`
	Status    HealthStatus `json:"status,omitempty"`
	Transport Transport    `json:"transport,omitempty"`
	Tool      string       `json:"tool,omitempty"`
	Prompt    string       `json:"prompt,omitempty"`
	// Resource keeps entries declaring a resource prefix of (or equal to) this URI.
	Resource string `json:"resource,omitempty"`
	// Scope "cluster" adds the other machines' entries mirrored by `peer-registry agent`
	// (library 0.2.0; each carries "node" in Extra; docs/CLUSTER.md). "" or "local": this
	// machine only.
	Scope string `json:"scope,omitempty"`
}

// ListResult is a snapshot of the live entries.
type ListResult struct {
	// Generation is the file's generation the snapshot was read at; it increases by one on
	// every write, so a larger one is newer.
	Generation uint64  `json:"generation"`
	Servers    []Entry `json:"servers"`
}

// Event is one change seen by a Watcher: the difference between the state the watch saw last
// and the state at Generation. Removed holds the last version of each removed entry.
type Event struct {
	Generation uint64  `json:"generation"`
	Added      []Entry `json:"added"`
	Removed    []Entry `json:"removed"`
	Changed    []Entry `json:"changed"`
}
