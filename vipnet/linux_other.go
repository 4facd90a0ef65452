//go:build !linux

package vipnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// LinuxConfig configures a Linux holder; see the Linux build for the fields'
// meaning. It exists on other systems only so that callers compile.
type LinuxConfig struct {
	Address            netip.Prefix
	Interface          string
	Label              string
	GratuitousCount    int
	GratuitousInterval time.Duration
	RefreshInterval    time.Duration
	ProbeTimeout       time.Duration
	Logger             *slog.Logger
}

// Linux is the netlink VIP holder. On this system it cannot be created.
type Linux struct{}

var _ Holder = (*Linux)(nil)

// NewLinux always fails with an error wrapping errors.ErrUnsupported: the
// netlink holder works only on Linux.
func NewLinux(LinuxConfig) (*Linux, error) {
	return nil, fmt.Errorf("vipnet: the netlink VIP holder needs Linux: %w", errors.ErrUnsupported)
}

func (*Linux) Address() string                    { return "" }
func (*Linux) Acquire(context.Context) error      { return errors.ErrUnsupported }
func (*Linux) Release(context.Context) error      { return nil }
func (*Linux) RemoveStale(context.Context) error  { return nil }
func (*Linux) Held(context.Context) (bool, error) { return false, nil }
func (*Linux) Close() error                       { return nil }
