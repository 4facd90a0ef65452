//go:build !linux

package sysinfo

import (
	"errors"
	"fmt"
	"runtime"
)

// statfs is not implemented outside Linux; it always returns an error
// wrapping errors.ErrUnsupported.
func statfs(path string) (total, free uint64, err error) {
	return 0, 0, fmt.Errorf("disk usage unsupported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
