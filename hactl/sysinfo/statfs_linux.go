//go:build linux

package sysinfo

import (
	"errors"
	"fmt"
	"math/bits"
	"syscall"
)

// statfs returns the total size of the filesystem holding path and the
// space on it available to unprivileged users, both in bytes.
func statfs(path string) (total, free uint64, err error) {
	var st syscall.Statfs_t
	for {
		err = syscall.Statfs(path, &st)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return 0, 0, err
	}
	// Per statfs(2), f_blocks and f_bavail are counted in units of
	// f_frsize; fall back to f_bsize for filesystems that leave it zero.
	var size uint64
	switch {
	case st.Frsize > 0:
		size = uint64(st.Frsize)
	case st.Bsize > 0:
		size = uint64(st.Bsize)
	default:
		return 0, 0, fmt.Errorf("invalid block size %d (fragment size %d)", st.Bsize, st.Frsize)
	}
	total, err = mulBytes(st.Blocks, size)
	if err != nil {
		return 0, 0, err
	}
	free, err = mulBytes(st.Bavail, size)
	if err != nil {
		return 0, 0, err
	}
	return total, free, nil
}

// mulBytes returns blocks*size, or an error if the product overflows.
func mulBytes(blocks, size uint64) (uint64, error) {
	hi, lo := bits.Mul64(blocks, size)
	if hi != 0 {
		return 0, fmt.Errorf("%d blocks of %d bytes overflows uint64", blocks, size)
	}
	return lo, nil
}
