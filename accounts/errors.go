package accounts

import (
	"errors"
	"fmt"
)

// Kinds of failure, compared with errors.Is. The admin API answers 400 for
// ErrInvalid and ErrNoEncryptionKey, 404 for ErrNotFound, 409 for
// ErrExists, ErrConfigOwned, ErrInUse, ErrConflict and ErrBusy, and 503 for the rest.
var (
	// ErrInvalid: the request is malformed or names something impossible.
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: no tier, consumer, key or provider of that name or id.
	ErrNotFound = errors.New("not found")
	// ErrExists: the name is taken.
	ErrExists = errors.New("already exists")
	// ErrConfigOwned: the config file declares the name; edit the file.
	ErrConfigOwned = errors.New("declared in the config file")
	// ErrInUse: a tier still has consumers.
	ErrInUse = errors.New("in use")
	// ErrConflict: the record is not in a state that allows the change
	// (e.g. rotating a revoked key).
	ErrConflict = errors.New("conflict")
	// ErrBusy: other changes kept landing first; try again.
	ErrBusy = errors.New("changed concurrently")
	// ErrNoEncryptionKey: provider keys cannot be stored without the
	// operator's encryption key.
	ErrNoEncryptionKey = errors.New("no encryption key")
	// ErrDecrypt: a sealed provider key does not open with this key.
	ErrDecrypt = errors.New("cannot decrypt")
	// ErrUnavailable: the store did not answer.
	ErrUnavailable = errors.New("accounts store unavailable")
)

// Error is a failure whose message is fit for the API's answer; it wraps
// one of the kinds above.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the kind.
func (e *Error) Unwrap() error { return e.Kind }

func fail(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}
