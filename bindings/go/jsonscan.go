//go:build jsonscan

package peerregistry

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
)

// A small scanner for the library's JSON. encoding/json cannot keep unknown members while
// decoding into a struct, and decoding into a map first costs more than the library call
// itself; this walks an object's members once, without allocating, and leaves each value to
// a decoder that checks it (strings, numbers, nested objects here; anything else to
// encoding/json). Values kept verbatim (Extra) are checked with json.Valid.

var errSyntax = errors.New("malformed JSON")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// stringEnd returns the index just past the string starting at b[i] == '"'.
func stringEnd(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errSyntax
}

// valueEnd returns the index just past the value starting at b[i].
func valueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := stringEnd(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errSyntax
	}
	j := i
	for j < len(b) && !isSpace(b[j]) && b[j] != ',' && b[j] != '}' && b[j] != ']' {
		j++
	}
	if j == i {
		return 0, errSyntax
	}
	return j, nil
}

func isNull(b []byte) bool { return string(bytes.TrimSpace(b)) == "null" }

// eachMember calls fn with each member of the JSON object b. null is an empty object. key is
// the member's name, unescaped, in a buffer valid only during the call: switch on
// string(key), which does not allocate, and copy it to keep it.
func eachMember(b []byte, fn func(key, value []byte) error) error {
	if isNull(b) {
		return nil
	}
	return eachItem(b, '{', '}', func(item, key []byte) error { return fn(key, item) })
}

// eachElement calls fn with each element of the JSON array b. null is an empty array.
func eachElement(b []byte, fn func(value []byte) error) error {
	if isNull(b) {
		return nil
	}
	return eachItem(b, '[', ']', func(item, _ []byte) error { return fn(item) })
}

func eachItem(b []byte, open, close byte, fn func(value, key []byte) error) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != open {
		return errSyntax
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == close {
		i++
	} else {
		for {
			var key []byte
			if open == '{' {
				if i >= len(b) || b[i] != '"' {
					return errSyntax
				}
				end, err := stringEnd(b, i)
				if err != nil {
					return err
				}
				if key = plainString(b[i:end]); key == nil {
					var s string
					if err := json.Unmarshal(b[i:end], &s); err != nil {
						return err
					}
					key = []byte(s)
				}
				i = skipSpace(b, end)
				if i >= len(b) || b[i] != ':' {
					return errSyntax
				}
				i = skipSpace(b, i+1)
			}
			end, err := valueEnd(b, i)
			if err != nil {
				return err
			}
			if err := fn(b[i:end], key); err != nil {
				return err
			}
			i = skipSpace(b, end)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == close {
				i++
				break
			}
			return errSyntax
		}
	}
	if skipSpace(b, i) != len(b) {
		return errSyntax
	}
	return nil
}

// decodeString reads a JSON string; plain valid UTF-8 without escapes, the usual case, skips
// encoding/json. Otherwise encoding/json decides (it turns invalid UTF-8 into U+FFFD). null
// leaves dst unchanged, as encoding/json does.
func decodeString(value []byte, dst *string) error {
	if inner := plainString(value); inner != nil {
		*dst = string(inner)
		return nil
	}
	return json.Unmarshal(value, dst)
}

// plainString returns the content of the JSON string literal value when it needs no
// unescaping (no backslash or control character, valid UTF-8), else nil.
func plainString(value []byte) []byte {
	n := len(value)
	if n < 2 || value[0] != '"' || value[n-1] != '"' {
		return nil
	}
	inner := value[1 : n-1]
	for _, c := range inner {
		if c == '\\' || c == '"' || c < 0x20 {
			return nil
		}
	}
	if !utf8.Valid(inner) {
		return nil
	}
	return inner
}

func decodeInt(value []byte, dst *int) error {
	if n, err := strconv.Atoi(string(value)); err == nil {
		*dst = n
		return nil
	}
	return json.Unmarshal(value, dst)
}

func decodeUint64(value []byte, dst *uint64) error {
	if n, err := strconv.ParseUint(string(value), 10, 64); err == nil {
		*dst = n
		return nil
	}
	return json.Unmarshal(value, dst)
}

func decodeBool(value []byte, dst *bool) error {
	switch string(value) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	case "null":
	default:
		return errSyntax
	}
	return nil
}

func decodeStrings(value []byte, dst *[]string) error {
	*dst = nil
	if isNull(value) {
		return nil
	}
	out := []string{}
	err := eachElement(value, func(item []byte) error {
		var s string
		if err := decodeString(item, &s); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return err
	}
	*dst = out
	return nil
}

func decodeTime(value []byte, dst *time.Time) error {
	if isNull(value) {
		*dst = time.Time{}
		return nil
	}
	var s string
	if err := decodeString(value, &s); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	*dst = t
	return nil
}

// keepExtra stores a copy of an unknown member (the caller's buffer may be reused).
func keepExtra(extra *map[string]json.RawMessage, key, value []byte) error {
	if !json.Valid(value) {
		return errSyntax
	}
	if *extra == nil {
		*extra = map[string]json.RawMessage{}
	}
	(*extra)[string(key)] = append(json.RawMessage(nil), value...)
	return nil
}

func decodeEntries(value []byte, dst *[]Entry) error {
	*dst = nil
	if isNull(value) {
		return nil
	}
	out := []Entry{}
	err := eachElement(value, func(item []byte) error {
		var e Entry
		if err := e.UnmarshalJSON(item); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return err
	}
	*dst = out
	return nil
}

func member(key []byte, err error) error {
	if err == nil {
		return nil
	}
	return &memberError{key: string(key), err: err}
}

type memberError struct {
	key string
	err error
}

func (e *memberError) Error() string { return strconv.Quote(e.key) + ": " + e.err.Error() }
func (e *memberError) Unwrap() error { return e.err }

// UnmarshalJSON reads an entry, keeping unknown fields in Extra.
func (e *Entry) UnmarshalJSON(b []byte) error {
	*e = Entry{}
	return eachMember(b, func(key, value []byte) error {
		switch string(key) {
		case "id":
			return member(key, decodeString(value, &e.ID))
		case "name":
			return member(key, decodeString(value, &e.Name))
		case "url":
			return member(key, decodeString(value, &e.URL))
		case "port":
			return member(key, decodeInt(value, &e.Port))
		case "transport":
			return member(key, decodeString(value, (*string)(&e.Transport)))
		case "pid":
			return member(key, decodeInt(value, &e.PID))
		case "startedAt":
			return member(key, decodeTime(value, &e.StartedAt))
		case "lastSeen":
			return member(key, decodeTime(value, &e.LastSeen))
		case "liveness":
			return member(key, decodeString(value, (*string)(&e.Liveness)))
		case "ttlSeconds":
			return member(key, decodeInt(value, &e.TTLSeconds))
		case "capabilities":
			return member(key, e.Capabilities.UnmarshalJSON(value))
		case "health":
			return member(key, e.Health.UnmarshalJSON(value))
		case "requiresSession":
			return member(key, decodeBool(value, &e.RequiresSession))
		case "metadata":
			return member(key, json.Unmarshal(value, &e.Metadata))
		}
		return member(key, keepExtra(&e.Extra, key, value))
	})
}

func (c *Capabilities) UnmarshalJSON(b []byte) error {
	*c = Capabilities{}
	return eachMember(b, func(key, value []byte) error {
		switch string(key) {
		case "tools":
			return member(key, decodeStrings(value, &c.Tools))
		case "resources":
			return member(key, decodeStrings(value, &c.Resources))
		case "prompts":
			return member(key, decodeStrings(value, &c.Prompts))
		}
		return member(key, keepExtra(&c.Extra, key, value))
	})
}

func (h *Health) UnmarshalJSON(b []byte) error {
	*h = Health{}
	return eachMember(b, func(key, value []byte) error {
		switch string(key) {
		case "status":
			return member(key, decodeString(value, (*string)(&h.Status)))
		case "message":
			return member(key, decodeString(value, &h.Message))
		case "lastCheck":
			return member(key, decodeTime(value, &h.LastCheck))
		case "consecutiveFailures":
			return member(key, decodeInt(value, &h.ConsecutiveFailures))
		}
		return member(key, keepExtra(&h.Extra, key, value))
	})
}

// UnmarshalJSON reads a list result as peerreg_list writes it.
func (r *ListResult) UnmarshalJSON(b []byte) error {
	*r = ListResult{}
	return eachMember(b, func(key, value []byte) error {
		switch string(key) {
		case "generation":
			return member(key, decodeUint64(value, &r.Generation))
		case "servers":
			return member(key, decodeEntries(value, &r.Servers))
		}
		return nil
	})
}

// UnmarshalJSON reads an event as peerreg_watch_next writes it.
func (ev *Event) UnmarshalJSON(b []byte) error {
	*ev = Event{}
	return eachMember(b, func(key, value []byte) error {
		switch string(key) {
		case "generation":
			return member(key, decodeUint64(value, &ev.Generation))
		case "added":
			return member(key, decodeEntries(value, &ev.Added))
		case "removed":
			return member(key, decodeEntries(value, &ev.Removed))
		case "changed":
			return member(key, decodeEntries(value, &ev.Changed))
		}
		return nil
	})
}
