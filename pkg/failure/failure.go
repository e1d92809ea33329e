// Package failure defines the classes of failure that stellaops-cli maps to
// exit codes. Library packages wrap one of these classes in their own
// exported errors, so callers can branch with errors.Is on either.
package failure

import (
	"errors"
	"fmt"
)

// Classes of failure (CONTRACT.md §2, exit status).
var (
	// ErrVerification: digest, size, signature, untrusted key, missing or
	// extra file, unsafe archive entry, malformed signed document (exit 2).
	ErrVerification = errors.New("verification failed")
	// ErrPolicy: expired, not yet valid, rollback, stale (exit 3).
	ErrPolicy = errors.New("refused by policy")
	// ErrUsage: bad invocation or unreadable operator input (exit 4).
	ErrUsage = errors.New("bad invocation")
	// ErrBusy: another import or sync holds the export root's lock (exit 5).
	ErrBusy = errors.New("export root is busy")
	// ErrInterrupted: SIGINT or SIGTERM (exit 130).
	ErrInterrupted = errors.New("interrupted")
)

// Exit codes of the contract.
const (
	ExitOK           = 0
	ExitError        = 1
	ExitVerification = 2
	ExitPolicy       = 3
	ExitUsage        = 4
	ExitBusy         = 5
	ExitInterrupted  = 130
)

// Code maps an error to the contract's exit code.
func Code(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrInterrupted):
		return ExitInterrupted
	case errors.Is(err, ErrUsage):
		return ExitUsage
	case errors.Is(err, ErrBusy):
		return ExitBusy
	case errors.Is(err, ErrVerification):
		return ExitVerification
	case errors.Is(err, ErrPolicy):
		return ExitPolicy
	}
	return ExitError
}

// Usagef returns an ErrUsage error with a message.
func Usagef(format string, args ...any) error {
	return &classed{class: ErrUsage, msg: fmt.Sprintf(format, args...)}
}

// Verificationf returns an ErrVerification error with a message.
func Verificationf(format string, args ...any) error {
	return &classed{class: ErrVerification, msg: fmt.Sprintf(format, args...)}
}

// Policyf returns an ErrPolicy error with a message.
func Policyf(format string, args ...any) error {
	return &classed{class: ErrPolicy, msg: fmt.Sprintf(format, args...)}
}

// Classify wraps err so that errors.Is(err, class) holds, keeping its message.
func Classify(class, err error) error {
	if err == nil || errors.Is(err, class) {
		return err
	}
	return &classed{class: class, msg: err.Error(), cause: err}
}

type classed struct {
	class error
	msg   string
	cause error
}

func (c *classed) Error() string { return c.msg }
func (c *classed) Unwrap() []error {
	if c.cause != nil {
		return []error{c.class, c.cause}
	}
	return []error{c.class}
}

// Hinted carries a suggestion for the operator alongside an error.
type Hinted struct {
	Err  error
	Hint string
}

func (h *Hinted) Error() string { return h.Err.Error() }
func (h *Hinted) Unwrap() error { return h.Err }

// WithHint attaches an operator hint to err.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &Hinted{Err: err, Hint: hint}
}

// HintOf returns the first hint found in err's chain.
func HintOf(err error) string {
	var h *Hinted
	if errors.As(err, &h) {
		return h.Hint
	}
	return ""
}

// New returns a sentinel error of class with its own message: errors.Is
// matches both the sentinel and the class, and the message is msg alone.
func New(class error, msg string) error {
	return &classed{class: class, msg: msg}
}
