package peerregistry

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

const sampleEntry = `{"id":"svc-42","name":"Sv\u00e9 \"42\"","url":"http://127.0.0.1:2042/mcp","port":2042,
 "transport":"http","pid":26291,"startedAt":"2026-11-21T10:04:26.211Z","lastSeen":"2026-11-21T10:04:27.5+01:00",
 "liveness":"ttl","ttlSeconds":30,"capabilities":{"tools":["tool-42","a\\b"],"resources":[],"prompts":null,"x-kinds":{"k":[1,"]"]}},
 "health":{"status":"DEGRADED","message":"}{","lastCheck":null,"x-h":true},"requiresSession":true,
 "metadata":{"n":1.5,"s":"t","l":[true,null]},"x-future":{"nested":["[",{"}":1}]}, "x-num" : -1e3 }`

func TestDecodeEntryByHand(t *testing.T) {
	var e Entry
	if err := e.UnmarshalJSON([]byte(sampleEntry)); err != nil {
		t.Fatal(err)
	}
	want := Entry{
		ID: "svc-42", Name: "Své \"42\"", URL: "http://127.0.0.1:2042/mcp", Port: 2042,
		Transport: TransportHTTP, PID: 26291,
		StartedAt: time.Date(2026, 11, 21, 10, 4, 26, 211e6, time.UTC),
		LastSeen:  time.Date(2026, 11, 21, 10, 4, 27, 5e8, time.FixedZone("", 3600)),
		Liveness:  LivenessTTL, TTLSeconds: 30,
		Capabilities: Capabilities{Tools: []string{"tool-42", `a\b`}, Resources: []string{},
			Extra: map[string]json.RawMessage{"x-kinds": json.RawMessage(`{"k":[1,"]"]}`)}},
		Health: Health{Status: StatusDegraded, Message: "}{",
			Extra: map[string]json.RawMessage{"x-h": json.RawMessage(`true`)}},
		RequiresSession: true,
		Metadata:        map[string]any{"n": 1.5, "s": "t", "l": []any{true, nil}},
		Extra: map[string]json.RawMessage{
			"x-future": json.RawMessage(`{"nested":["[",{"}":1}]}`),
			"x-num":    json.RawMessage(`-1e3`),
		},
	}
	if !e.StartedAt.Equal(want.StartedAt) || !e.LastSeen.Equal(want.LastSeen) {
		t.Errorf("times %v %v", e.StartedAt, e.LastSeen)
	}
	e.StartedAt, e.LastSeen, want.StartedAt, want.LastSeen = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("got  %#v\nwant %#v", e, want)
	}
}

func TestDecodeRejectsMalformedJSON(t *testing.T) {
	for _, in := range []string{
		``, `{`, `}`, `[]`, `{"id"}`, `{"id":}`, `{"id":"x",}`, `{"id":"x"} trailing`, `{"id":"x" "url":"y"}`,
		`{"id":"unterminated}`, `{"port":"80"}`, `{"port":1.5}`, `{"requiresSession":tru}`,
		`{"capabilities":{"tools":[1]}}`, `{"capabilities":{"tools":["a",]}}`, `{"health":[]}`,
		`{"x":[1,2}`, `{"x":{"a":1]}`, `{"x":nul}`, `{"startedAt":"yesterday"}`, `{"x":"\q"}`,
	} {
		var e Entry
		if err := e.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("%q decoded without error: %+v", in, e)
		}
	}
}

func TestDecodeListAndEvent(t *testing.T) {
	var res ListResult
	if err := json.Unmarshal([]byte(`{"generation":18446744073709551615,"servers":[{"id":"a","url":"u"},{"id":"b","url":"v"}],"x":1}`), &res); err != nil {
		t.Fatal(err)
	}
	if res.Generation != 1<<64-1 || len(res.Servers) != 2 || res.Servers[1].ID != "b" {
		t.Fatalf("%+v", res)
	}
	var ev Event
	if err := json.Unmarshal([]byte(`{"generation":7,"added":[],"removed":[{"id":"r","url":"u"}],"changed":null}`), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Generation != 7 || len(ev.Added) != 0 || ev.Removed[0].ID != "r" || ev.Changed != nil {
		t.Fatalf("%+v", ev)
	}
}

// Whatever the input, decoding does not panic; what decodes, re-encodes to JSON that
// encoding/json accepts and that decodes to the same entry.
func FuzzDecodeEntry(f *testing.F) {
	f.Add([]byte(sampleEntry))
	f.Add([]byte(`{"id":"a","url":"u","capabilities":{"tools":["t"]},"health":{"status":"HEALTHY"}}`))
	f.Add([]byte(`{"id":"a\u0000","x":[{"y":"\"]"}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Entry
		if err := e.UnmarshalJSON(b); err != nil {
			return
		}
		out, err := json.Marshal(e)
		if err != nil {
			return // e.g. metadata holding values json cannot encode back
		}
		if !json.Valid(out) {
			t.Fatalf("re-encoded %q is not JSON", out)
		}
		var again Entry
		if err := again.UnmarshalJSON(out); err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", out, err)
		}
		out2, err := json.Marshal(again)
		if err != nil || string(out) != string(out2) {
			t.Fatalf("not stable:\n%s\n%s (%v)", out, out2, err)
		}
	})
}

// The entry peerreg_get returns for a typical registration (captured from the library).
const typicalEntry = `{"id":"svc-42","url":"http://127.0.0.1:2042/mcp","port":2042,"transport":"http","pid":26291,"startedAt":"2026-11-21T10:04:26.211Z","lastSeen":"2026-11-21T10:04:26.211Z","liveness":"lease","capabilities":{"tools":["tool-42"],"resources":[],"prompts":[]},"health":{"status":"UNKNOWN"}}`

// The decoder is encoding/json (decode.go). A hand-written scanner was measured against it
// side by side and removed: see README.md, "Cost per call".

// BenchmarkDecodeEntry is the Go-side share of Get: decoding the library's JSON.
func BenchmarkDecodeEntry(b *testing.B) {
	data := []byte(typicalEntry)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var e Entry
		if err := e.UnmarshalJSON(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeEntryEncodingJSON is the same through encoding/json into a plain struct
// (no unknown-field capture), for comparison.
func BenchmarkDecodeEntryEncodingJSON(b *testing.B) {
	type plain struct {
		ID, Name, URL         string
		Port, PID, TTLSeconds int
		Transport, Liveness   string
		StartedAt, LastSeen   time.Time
		Capabilities          struct{ Tools, Resources, Prompts []string }
		Health                struct{ Status, Message string }
		RequiresSession       bool
		Metadata              map[string]any
	}
	data := []byte(typicalEntry)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var e plain
		if err := json.Unmarshal(data, &e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeList100 decodes what List returns for 100 typical entries.
func BenchmarkDecodeList100(b *testing.B) {
	var buf []byte
	buf = append(buf, `{"generation":123,"servers":[`...)
	for i := 0; i < 100; i++ {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, typicalEntry...)
	}
	buf = append(buf, "]}"...)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var res ListResult
		if err := json.Unmarshal(buf, &res); err != nil || len(res.Servers) != 100 {
			b.Fatal(err)
		}
	}
}
