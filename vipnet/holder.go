package vipnet

import (
	"context"
	"errors"
)

// Holder holds one virtual IP for this node.
//
// It is level-triggered: callers compare the desired state with the actual
// state from Held and call Acquire or Release; both are idempotent.
//
// Concurrency contract: all methods are safe for concurrent use. Acquire,
// Release and Close are serialized with each other; Held may run at the same
// time as any of them and then reports the state at some moment during the
// call. After Close, Acquire fails with ErrClosed and Release and Held report
// that nothing is held.
type Holder interface {
	// Address returns the VIP, e.g. "127.0.0.12". It never changes.
	Address() string

	// Acquire takes the VIP. It returns nil when the VIP is already held by
	// this Holder. If another holder has the VIP it returns an error wrapping
	// ErrConflict that says who or what holds it. Acquire never takes the VIP
	// half-way: on any error nothing new is held.
	Acquire(ctx context.Context) error

	// Release gives the VIP up. Not holding it is success. Once Release has
	// returned, the VIP is no longer held by this Holder, even if Release
	// returns an error (which then only reports that cleanup was not
	// confirmed before ctx ended).
	Release(ctx context.Context) error

	// Held reports whether this node really holds the VIP now, read from the
	// system, never from a remembered flag alone. The error is non-nil only
	// when the answer could not be found out (for example ctx ended).
	Held(ctx context.Context) (bool, error)

	// Close releases the VIP and frees every resource, waiting for all
	// goroutines the Holder started. Calling Close again returns nil.
	Close() error
}

// ErrConflict is wrapped by Acquire errors when another holder has the VIP.
// Test for it with errors.Is.
var ErrConflict = errors.New("vip held by another holder")

// ErrClosed is returned by Acquire after Close.
var ErrClosed = errors.New("vipnet: holder closed")
