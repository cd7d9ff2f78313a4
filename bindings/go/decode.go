package peerregistry

import (
	"encoding/json"
	"strconv"
)

// Decoding the library's JSON with encoding/json. Unknown members must survive a round trip
// (they are written back on Register), which encoding/json cannot do while decoding into a
// struct; so each object is read once into its members, each known member is decoded into
// its field, and the others are kept in Extra. Member names match exactly, as in the format.

// UnmarshalJSON reads an entry, keeping unknown fields in Extra.
func (e *Entry) UnmarshalJSON(b []byte) error {
	*e = Entry{}
	return eachMember(b, func(key string, value json.RawMessage) error {
		switch key {
		case "id":
			return json.Unmarshal(value, &e.ID)
		case "name":
			return json.Unmarshal(value, &e.Name)
		case "url":
			return json.Unmarshal(value, &e.URL)
		case "port":
			return json.Unmarshal(value, &e.Port)
		case "transport":
			return json.Unmarshal(value, &e.Transport)
		case "pid":
			return json.Unmarshal(value, &e.PID)
		case "startedAt":
			return json.Unmarshal(value, &e.StartedAt)
		case "lastSeen":
			return json.Unmarshal(value, &e.LastSeen)
		case "liveness":
			return json.Unmarshal(value, &e.Liveness)
		case "ttlSeconds":
			return json.Unmarshal(value, &e.TTLSeconds)
		case "capabilities":
			return e.Capabilities.UnmarshalJSON(value)
		case "health":
			return e.Health.UnmarshalJSON(value)
		case "requiresSession":
			return json.Unmarshal(value, &e.RequiresSession)
		case "metadata":
			return json.Unmarshal(value, &e.Metadata)
		}
		keepExtra(&e.Extra, key, value)
		return nil
	})
}

// UnmarshalJSON reads capabilities, keeping unknown fields in Extra.
func (c *Capabilities) UnmarshalJSON(b []byte) error {
	*c = Capabilities{}
	return eachMember(b, func(key string, value json.RawMessage) error {
		switch key {
		case "tools":
			return json.Unmarshal(value, &c.Tools)
		case "resources":
			return json.Unmarshal(value, &c.Resources)
		case "prompts":
			return json.Unmarshal(value, &c.Prompts)
		}
		keepExtra(&c.Extra, key, value)
		return nil
	})
}

// UnmarshalJSON reads a health record, keeping unknown fields in Extra.
func (h *Health) UnmarshalJSON(b []byte) error {
	*h = Health{}
	return eachMember(b, func(key string, value json.RawMessage) error {
		switch key {
		case "status":
			return json.Unmarshal(value, &h.Status)
		case "message":
			return json.Unmarshal(value, &h.Message)
		case "lastCheck":
			return json.Unmarshal(value, &h.LastCheck)
		case "consecutiveFailures":
			return json.Unmarshal(value, &h.ConsecutiveFailures)
		}
		keepExtra(&h.Extra, key, value)
		return nil
	})
}

// eachMember decodes the JSON object b (null: no members) and calls fn for each member; an
// error names the member.
func eachMember(b []byte, fn func(key string, value json.RawMessage) error) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return err
	}
	for key, value := range members {
		if err := fn(key, value); err != nil {
			return &memberError{key: key, err: err}
		}
	}
	return nil
}

func keepExtra(extra *map[string]json.RawMessage, key string, value json.RawMessage) {
	if *extra == nil {
		*extra = map[string]json.RawMessage{}
	}
	(*extra)[key] = value // a copy: encoding/json copies RawMessage values
}

type memberError struct {
	key string
	err error
}

func (e *memberError) Error() string { return strconv.Quote(e.key) + ": " + e.err.Error() }
func (e *memberError) Unwrap() error { return e.err }
