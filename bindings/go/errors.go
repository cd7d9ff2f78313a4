package peerregistry

import "strconv"

// Code is a PEERREG_* result code from include/peer_registry.h.
type Code int

// The result codes. Their values are the header's and are stable across 0.x and 1.x.
const (
	CodeOK         Code = 0
	CodeInvalid    Code = -1  // bad argument: malformed JSON, bad field, bad id
	CodeNotFound   Code = -2  // no live entry with that id; nothing resolves that name
	CodeExists     Code = -3  // the id is held by another live registrant
	CodeCorrupt    Code = -4  // the registry file does not parse
	CodeIO         Code = -5  // a system call failed
	CodePermission Code = -6  // unsafe ownership, permissions, symlink or hard link
	CodeTimeout    Code = -7  // the file lock was not obtained in time
	CodeAmbiguous  Code = -8  // several equally healthy servers declare the name
	CodeLimit      Code = -9  // a documented size limit was exceeded
	CodeClosed     Code = -10 // the handle was closed
)

var codeNames = map[Code]string{
	CodeOK:         "PEERREG_OK",
	CodeInvalid:    "PEERREG_EINVAL",
	CodeNotFound:   "PEERREG_ENOTFOUND",
	CodeExists:     "PEERREG_EEXISTS",
	CodeCorrupt:    "PEERREG_ECORRUPT",
	CodeIO:         "PEERREG_EIO",
	CodePermission: "PEERREG_EPERM",
	CodeTimeout:    "PEERREG_ETIMEOUT",
	CodeAmbiguous:  "PEERREG_EAMBIGUOUS",
	CodeLimit:      "PEERREG_ELIMIT",
	CodeClosed:     "PEERREG_ECLOSED",
}

// String returns the code's name in the header, e.g. "PEERREG_ENOTFOUND".
func (c Code) String() string {
	if name, ok := codeNames[c]; ok {
		return name
	}
	return "PEERREG_CODE(" + strconv.Itoa(int(c)) + ")"
}

// Error is an error reported by the library (or, for ErrClosed on a closed Registry and
// ErrInvalid for a string holding a NUL byte, by this package, with the same codes).
// Compare with errors.Is against the Err* sentinels: two *Error match when their codes do.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "peerregistry: " + e.Code.String()
	}
	return "peerregistry: " + e.Code.String() + ": " + e.Message
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, peerregistry.ErrNotFound) works whatever the message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && t.Code == e.Code
}

// Sentinels for errors.Is. Do not modify them.
var (
	ErrInvalid    = &Error{Code: CodeInvalid, Message: "invalid argument"}
	ErrNotFound   = &Error{Code: CodeNotFound, Message: "not found"}
	ErrExists     = &Error{Code: CodeExists, Message: "id held by another live registrant"}
	ErrCorrupt    = &Error{Code: CodeCorrupt, Message: "registry file does not parse"}
	ErrIO         = &Error{Code: CodeIO, Message: "system call failed"}
	ErrPermission = &Error{Code: CodePermission, Message: "unsafe ownership or permissions"}
	ErrTimeout    = &Error{Code: CodeTimeout, Message: "file lock not obtained in time"}
	ErrAmbiguous  = &Error{Code: CodeAmbiguous, Message: "several servers match"}
	ErrLimit      = &Error{Code: CodeLimit, Message: "size limit exceeded"}
	ErrClosed     = &Error{Code: CodeClosed, Message: "registry is closed"}
)
