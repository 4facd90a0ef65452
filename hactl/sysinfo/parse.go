package sysinfo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrMalformed is wrapped by every error the Parse functions return for
// input that does not have the expected format or whose values are out of
// range. Test for it with errors.Is.
var ErrMalformed = errors.New("malformed")

// ParseMeminfo parses the contents of /proc/meminfo and returns MemTotal
// and MemAvailable converted from kB to bytes.
//
// Every non-blank line must have the form "Key: value [unit]". Only the
// MemTotal and MemAvailable lines are interpreted; they must hold a
// non-negative decimal integer followed by the unit "kB", must not repeat,
// and must not overflow uint64 when multiplied by 1024. MemTotal is
// required. MemAvailable is optional (kernels before 3.14 lack it): if it
// is absent, available is 0 and no error is returned.
func ParseMeminfo(r io.Reader) (total, available uint64, err error) {
	var haveTotal, haveAvail bool
	sc := bufio.NewScanner(r)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			return 0, 0, fmt.Errorf("meminfo line %d: %w: missing ':' in %q", lineNo, ErrMalformed, truncate(line))
		}
		var dst *uint64
		var seen *bool
		switch key {
		case "MemTotal":
			dst, seen = &total, &haveTotal
		case "MemAvailable":
			dst, seen = &available, &haveAvail
		default:
			continue
		}
		if *seen {
			return 0, 0, fmt.Errorf("meminfo line %d: %w: duplicate %s", lineNo, ErrMalformed, key)
		}
		v, err := parseKB(rest)
		if err != nil {
			return 0, 0, fmt.Errorf("meminfo line %d: %s: %w", lineNo, key, err)
		}
		*dst, *seen = v, true
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("meminfo: %w", err)
	}
	if !haveTotal {
		return 0, 0, fmt.Errorf("meminfo: %w: MemTotal not found", ErrMalformed)
	}
	return total, available, nil
}

// parseKB parses the value part of a meminfo line, e.g. "  16333852 kB",
// and returns it in bytes.
func parseKB(s string) (uint64, error) {
	fields := strings.Fields(s)
	if len(fields) != 2 || fields[1] != "kB" {
		return 0, fmt.Errorf("%w: want \"<number> kB\", got %q", ErrMalformed, truncate(strings.TrimSpace(s)))
	}
	if !isDigits(fields[0]) {
		return 0, fmt.Errorf("%w: %q is not a non-negative integer", ErrMalformed, truncate(fields[0]))
	}
	kb, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil || kb > math.MaxUint64/1024 {
		return 0, fmt.Errorf("%w: %s kB overflows uint64 bytes", ErrMalformed, truncate(fields[0]))
	}
	return kb * 1024, nil
}

// ParseUptime parses the contents of /proc/uptime, e.g.
// "350735.47 234388.90\n", and returns the first number (seconds since
// boot) as a duration, truncated to nanoseconds.
//
// The input must hold one or two whitespace-separated non-negative
// decimals of the form "digits[.digits]" (no sign, exponent, Inf or NaN).
// Uptimes too large for a time.Duration (about 292 years) are an error.
func ParseUptime(s string) (time.Duration, error) {
	fields := strings.Fields(s)
	if len(fields) < 1 || len(fields) > 2 {
		return 0, fmt.Errorf("uptime: %w: want 1 or 2 fields, got %d", ErrMalformed, len(fields))
	}
	for i, f := range fields {
		if !isDecimal(f) {
			return 0, fmt.Errorf("uptime: %w: field %d %q is not a non-negative decimal", ErrMalformed, i+1, truncate(f))
		}
	}
	intPart, frac, _ := strings.Cut(fields[0], ".")
	secs, err := strconv.ParseUint(intPart, 10, 64)
	const maxSecs = uint64(math.MaxInt64 / int64(time.Second))
	if err != nil || secs > maxSecs {
		return 0, fmt.Errorf("uptime: %w: %s seconds overflows time.Duration", ErrMalformed, truncate(fields[0]))
	}
	// Keep at most nanosecond precision and right-pad to 9 digits.
	if len(frac) > 9 {
		frac = frac[:9]
	}
	frac += strings.Repeat("0", 9-len(frac))
	nanos, err := strconv.ParseUint(frac, 10, 64)
	if err != nil { // unreachable: frac is exactly 9 digits
		return 0, fmt.Errorf("uptime: %w: bad fraction %q", ErrMalformed, frac)
	}
	total := secs*uint64(time.Second) + nanos // secs <= maxSecs, so no uint64 overflow
	if total > math.MaxInt64 {
		return 0, fmt.Errorf("uptime: %w: %s seconds overflows time.Duration", ErrMalformed, truncate(fields[0]))
	}
	return time.Duration(total), nil
}

// ParseLoadavg parses the contents of /proc/loadavg, e.g.
// "0.52 0.58 0.59 1/467 12345\n", and returns the one-minute load average.
//
// The input must have at least three fields, and the first three (the 1-,
// 5- and 15-minute averages) must be finite non-negative decimals of the
// form "digits[.digits]". Later fields are not interpreted.
func ParseLoadavg(s string) (float64, error) {
	fields := strings.Fields(s)
	if len(fields) < 3 {
		return 0, fmt.Errorf("loadavg: %w: want at least 3 fields, got %d", ErrMalformed, len(fields))
	}
	var load1 float64
	for i, f := range fields[:3] {
		if !isDecimal(f) {
			return 0, fmt.Errorf("loadavg: %w: field %d %q is not a non-negative decimal", ErrMalformed, i+1, truncate(f))
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil { // only ErrRange is possible after isDecimal
			return 0, fmt.Errorf("loadavg: %w: field %d %q out of range", ErrMalformed, i+1, truncate(f))
		}
		if i == 0 {
			load1 = v
		}
	}
	return load1, nil
}

// isDigits reports whether s is a non-empty run of ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isDecimal reports whether s has the form digits[.digits].
func isDecimal(s string) bool {
	intPart, frac, hasDot := strings.Cut(s, ".")
	return isDigits(intPart) && (!hasDot || isDigits(frac))
}

// truncate shortens s for inclusion in an error message.
func truncate(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
