package peerregistry

// The Go runner of tests/conformance/cases.json (tests/conformance/README.md): every step
// through this package's API (entries decoded into Entry and encoded back, filters into
// Filter), raw JSON steps through the cgo layer beneath it. It runs with the other tests;
// with PEERREG_CONFORMANCE_OUT set it also writes its per-case lines there for
// `make test-conformance` to compare with the other languages'.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// conformanceClock is the file the library reads "now" from (docs/FORMAT.md, "Environment"):
// named before the library first reads the time, absent (the real clock) except while a case
// has set it.
var conformanceClock = filepath.Join(os.TempDir(), "peerreg-go-conformance-clock-"+strconv.Itoa(os.Getpid()))

func init() { os.Setenv("PEER_REGISTRY_TEST_CLOCK_FILE", conformanceClock) }

type conformanceStep struct {
	Op                  string          `json:"op"`
	Handle              string          `json:"handle"`
	Entry               json.RawMessage `json:"entry"`
	JSON                *string         `json:"json"`
	ID                  *string         `json:"id"`
	Filter              json.RawMessage `json:"filter"`
	FilterJSON          *string         `json:"filter_json"`
	Kind                string          `json:"kind"`
	Name                string          `json:"name"`
	Status              HealthStatus    `json:"status"`
	Message             string          `json:"message"`
	MS                  int64           `json:"ms"`
	Expect              any             `json:"expect"`
	IDs                 []string        `json:"ids"`
	GenerationSinceMark *int64          `json:"generation_since_mark"`
	Removed             *int            `json:"removed"`
	Text                *string         `json:"text"`
	Error               string          `json:"error"`
	MessageContains     []string        `json:"message_contains"`
}

type conformanceCase struct {
	Name  string            `json:"name"`
	File  json.RawMessage   `json:"file"`
	Steps []conformanceStep `json:"steps"`
}

func substitutePID(v any) any {
	switch x := v.(type) {
	case string:
		if x == "$pid" {
			return float64(os.Getpid())
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = substitutePID(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = substitutePID(e)
		}
		return out
	}
	return v
}

func conformanceMatches(expected, actual any) bool {
	switch e := expected.(type) {
	case map[string]any:
		a, ok := actual.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range e {
			got, present := a[k]
			if v == nil {
				if present && got != nil {
					return false
				}
			} else if !present || !conformanceMatches(v, got) {
				return false
			}
		}
		return true
	case []any:
		a, ok := actual.([]any)
		if !ok || len(a) != len(e) {
			return false
		}
		for i := range e {
			if !conformanceMatches(e[i], a[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(expected, actual)
}

// asJSON is v encoded the way this package encodes it, decoded generically for matching.
func asJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return "unencodable: " + err.Error()
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return "undecodable: " + err.Error()
	}
	return out
}

type conformanceMismatch struct{ what string }

func (m conformanceMismatch) Error() string { return m.what }

type conformanceRun struct {
	path    string
	handles map[string]*Registry
	mark    uint64
}

func (c *conformanceRun) open() (*Registry, error) { return Open(c.path) }

// rawCall passes text to fn as it is (JSON the typed API could not express) and decodes the
// library's answer into out.
func rawCall(reg *Registry, fn func(*cRegistry, []byte) ([]byte, error), text string, out any) error {
	var answer []byte
	err := reg.call(func(h *cRegistry) (err error) {
		answer, err = fn(h, append([]byte(text), 0))
		return err
	})
	if err != nil {
		return err
	}
	return json.Unmarshal(answer, out)
}

func (c *conformanceRun) step(s conformanceStep) (any, error) {
	ctx := context.Background()
	handle := s.Handle
	if handle == "" {
		handle = "a"
	}
	reg := c.handles[handle]
	id := ""
	if s.ID != nil {
		id = *s.ID
	}
	switch s.Op {
	case "register":
		if s.JSON != nil {
			var v any
			err := rawCall(reg, cRegister, *s.JSON, &v)
			return v, err
		}
		var e Entry
		if err := json.Unmarshal(s.Entry, &e); err != nil {
			return nil, conformanceMismatch{"the entry does not decode into Entry: " + err.Error()}
		}
		stored, err := reg.Register(ctx, e)
		return asJSON(stored), err
	case "get":
		e, err := reg.Get(id)
		return asJSON(e), err
	case "list":
		if s.FilterJSON != nil {
			var res ListResult
			err := rawCall(reg, cList, *s.FilterJSON, &res)
			return res, err
		}
		var f Filter
		if len(s.Filter) > 0 {
			dec := json.NewDecoder(bytes.NewReader(s.Filter))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&f); err != nil {
				return nil, conformanceMismatch{"the filter does not decode into Filter: " + err.Error()}
			}
		}
		return reg.List(f)
	case "resolve":
		switch s.Kind {
		case "tool":
			return reg.ResolveTool(s.Name)
		case "resource":
			return reg.ResolveResource(s.Name)
		case "prompt":
			return reg.ResolvePrompt(s.Name)
		}
	case "set_health":
		return nil, reg.SetHealth(ctx, id, s.Status, s.Message)
	case "heartbeat":
		return nil, reg.Heartbeat(ctx, id)
	case "unregister":
		return nil, reg.Unregister(ctx, id)
	case "prune":
		return reg.Prune(ctx)
	case "clock":
		if err := os.WriteFile(conformanceClock+".tmp", []byte(strconv.FormatInt(s.MS, 10)), 0o600); err != nil {
			return nil, conformanceMismatch{err.Error()}
		}
		return nil, os.Rename(conformanceClock+".tmp", conformanceClock)
	case "open":
		r, err := c.open()
		c.handles[handle] = r
		return nil, err
	case "close":
		return nil, reg.Close()
	case "mark":
		res, err := reg.List(Filter{})
		c.mark = res.Generation
		return nil, err
	case "read_file":
		b, err := os.ReadFile(c.path)
		return string(b), err
	}
	return nil, conformanceMismatch{"unknown op " + s.Op}
}

func (c *conformanceRun) verify(s conformanceStep, result any) error {
	fail := func(format string, args ...any) error { return conformanceMismatch{fmt.Sprintf(format, args...)} }
	if s.Expect != nil && s.Op != "read_file" && !conformanceMatches(substitutePID(s.Expect), result) {
		return fail("expected %v, got %v", s.Expect, result)
	}
	switch s.Op {
	case "list":
		res := result.(ListResult)
		if s.IDs != nil {
			got := []string{}
			for _, e := range res.Servers {
				got = append(got, e.ID)
			}
			if !reflect.DeepEqual(got, s.IDs) {
				return fail("expected ids %v, got %v", s.IDs, got)
			}
		}
		if s.GenerationSinceMark != nil && int64(res.Generation-c.mark) != *s.GenerationSinceMark {
			return fail("expected generation mark+%d, got mark+%d", *s.GenerationSinceMark, int64(res.Generation-c.mark))
		}
	case "resolve":
		if s.ID != nil && result.(Entry).ID != *s.ID {
			return fail("expected %s, got %s", *s.ID, result.(Entry).ID)
		}
	case "prune":
		if s.Removed != nil && result.(int) != *s.Removed {
			return fail("expected %d removed, got %d", *s.Removed, result.(int))
		}
	case "read_file":
		text := result.(string)
		if s.Text != nil && text != *s.Text {
			return fail("expected the file %q, got %q", *s.Text, text)
		}
		if s.Expect != nil {
			var doc any
			if err := json.Unmarshal([]byte(text), &doc); err != nil || !conformanceMatches(substitutePID(s.Expect), doc) {
				return fail("expected file %v, got %s", s.Expect, text)
			}
		}
	}
	return nil
}

func runConformanceCase(t *testing.T, cc conformanceCase) (outcomes []string, failure string) {
	os.Remove(conformanceClock)
	c := &conformanceRun{path: filepath.Join(t.TempDir(), "servers.json"), handles: map[string]*Registry{}}
	if len(cc.File) > 0 {
		text := []byte{}
		var s string
		if json.Unmarshal(cc.File, &s) == nil {
			text = []byte(s)
		} else {
			var doc any
			if err := json.Unmarshal(cc.File, &doc); err != nil {
				t.Fatal(err)
			}
			text, _ = json.Marshal(substitutePID(doc))
		}
		if err := os.WriteFile(c.path, text, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a, err := c.open()
	if err != nil {
		t.Fatalf("%s: open: %v", cc.Name, err)
	}
	c.handles["a"] = a
	defer func() {
		for _, r := range c.handles {
			if r != nil {
				r.Close()
			}
		}
	}()
	for i, s := range cc.Steps {
		result, err := c.step(s)
		var perr *Error
		var mismatch conformanceMismatch
		switch {
		case errors.As(err, &mismatch):
			outcomes = append(outcomes, "runner-error")
		case errors.As(err, &perr):
			name := perr.Code.String()
			outcomes = append(outcomes, name)
			if s.Error != name {
				err = conformanceMismatch{fmt.Sprintf("expected %s, got %s: %s", orSuccess(s.Error), name, perr.Message)}
			} else {
				err = nil
				for _, word := range s.MessageContains {
					if !strings.Contains(perr.Message, word) {
						err = conformanceMismatch{fmt.Sprintf("message %q does not name %q", perr.Message, word)}
					}
				}
			}
		case err != nil:
			outcomes = append(outcomes, "runner-error")
		default:
			outcomes = append(outcomes, "ok")
			if s.Error != "" {
				err = conformanceMismatch{"expected " + s.Error + ", got success"}
			} else {
				err = c.verify(s, result)
			}
		}
		if err != nil && failure == "" {
			failure = fmt.Sprintf("step %d (%s): %v", i+1, s.Op, err)
		}
	}
	return outcomes, failure
}

func orSuccess(code string) string {
	if code == "" {
		return "success"
	}
	return code
}

// TestConformance runs every case of tests/conformance/cases.json; all five languages must
// give the same results (make test-conformance compares them).
func TestConformance(t *testing.T) {
	if err := ensureLoaded(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(conformanceClock) })
	data, err := os.ReadFile(filepath.Join("..", "..", "tests", "conformance", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []conformanceCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var report strings.Builder
	failed := 0
	for _, cc := range doc.Cases {
		outcomes, failure := runConformanceCase(t, cc)
		verdict := "pass"
		if failure != "" {
			failed++
			verdict = "FAIL " + failure
			t.Errorf("%s: %s", cc.Name, failure)
		}
		fmt.Fprintf(&report, "%s: %s => %s\n", cc.Name, strings.Join(outcomes, " "), verdict)
	}
	fmt.Fprintf(&report, "%d cases, %d failed\n", len(doc.Cases), failed)
	if out := os.Getenv("PEERREG_CONFORMANCE_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
