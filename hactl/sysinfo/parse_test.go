package sysinfo

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

const realMeminfo = `MemTotal:       16333852 kB
MemFree:          891232 kB
MemAvailable:    9876544 kB
Buffers:          412340 kB
Cached:          8123456 kB
HugePages_Total:       0
HugePages_Free:        0
Hugepagesize:       2048 kB
`

func TestParseMeminfo(t *testing.T) {
	// 18014398509481983 = MaxUint64/1024, the largest kB value that fits.
	const maxKB = "18014398509481983"
	tests := []struct {
		name      string
		in        string
		total     uint64
		available uint64
		wantErr   string // substring; empty means success
	}{
		{name: "real file", in: realMeminfo, total: 16333852 * 1024, available: 9876544 * 1024},
		{name: "no trailing newline", in: "MemTotal: 4 kB\nMemAvailable: 2 kB", total: 4096, available: 2048},
		{name: "MemAvailable missing is not fatal", in: "MemTotal: 1024 kB\nMemFree: 512 kB\n", total: 1024 * 1024},
		{name: "order does not matter", in: "MemAvailable: 1 kB\nMemTotal: 2 kB\n", total: 2048, available: 1024},
		{name: "blank lines skipped", in: "\nMemTotal: 1 kB\n\n", total: 1024},
		{name: "tabs as separators", in: "MemTotal:\t8\tkB\n", total: 8192},
		{name: "CRLF line endings", in: "MemTotal: 8 kB\r\n", total: 8192},
		{name: "zero", in: "MemTotal: 0 kB\n", total: 0},
		{name: "max value", in: "MemTotal: " + maxKB + " kB\n", total: math.MaxUint64 / 1024 * 1024},
		{name: "other keys not validated", in: "MemTotal: 1 kB\nWeird: ???\n", total: 1024},
		{name: "key is case sensitive", in: "memtotal: 1 kB\n", wantErr: "MemTotal not found"},

		{name: "empty", in: "", wantErr: "MemTotal not found"},
		{name: "whitespace only", in: " \n\t\n", wantErr: "MemTotal not found"},
		{name: "MemTotal missing", in: "MemAvailable: 1 kB\n", wantErr: "MemTotal not found"},
		{name: "line without colon", in: "MemTotal 1 kB\n", wantErr: "missing ':'"},
		{name: "binary garbage", in: "\x00\xff\x01", wantErr: "missing ':'"},
		{name: "non-numeric", in: "MemTotal: lots kB\n", wantErr: "not a non-negative integer"},
		{name: "negative", in: "MemTotal: -1 kB\n", wantErr: "not a non-negative integer"},
		{name: "plus sign", in: "MemTotal: +1 kB\n", wantErr: "not a non-negative integer"},
		{name: "fractional", in: "MemTotal: 1.5 kB\n", wantErr: "not a non-negative integer"},
		{name: "missing value", in: "MemTotal:\n", wantErr: `want "<number> kB"`},
		{name: "missing unit", in: "MemTotal: 1\n", wantErr: `want "<number> kB"`},
		{name: "wrong unit", in: "MemTotal: 1 MB\n", wantErr: `want "<number> kB"`},
		{name: "extra field", in: "MemTotal: 1 kB extra\n", wantErr: `want "<number> kB"`},
		{name: "overflow when multiplied by 1024", in: "MemTotal: 18014398509481984 kB\n", wantErr: "overflows uint64"},
		{name: "overflow uint64 itself", in: "MemTotal: 18446744073709551616 kB\n", wantErr: "overflows uint64"},
		{name: "bad MemAvailable", in: "MemTotal: 1 kB\nMemAvailable: x kB\n", wantErr: "MemAvailable"},
		{name: "duplicate MemTotal", in: "MemTotal: 1 kB\nMemTotal: 2 kB\n", wantErr: "duplicate MemTotal"},
		{name: "line too long", in: "MemTotal: 1 kB\n" + strings.Repeat("x", 70000), wantErr: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total, avail, err := ParseMeminfo(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseMeminfo() = %d, %d, nil; want error containing %q", total, avail, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseMeminfo() error = %q; want it to contain %q", err, tt.wantErr)
				}
				if total != 0 || avail != 0 {
					t.Errorf("ParseMeminfo() = %d, %d with error; want zeros", total, avail)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMeminfo() unexpected error: %v", err)
			}
			if total != tt.total || avail != tt.available {
				t.Errorf("ParseMeminfo() = %d, %d; want %d, %d", total, avail, tt.total, tt.available)
			}
		})
	}
}

func TestParseMeminfoMalformedIsErrMalformed(t *testing.T) {
	for _, in := range []string{"", "x", "MemTotal: -1 kB", "MemTotal: 99999999999999999999 kB"} {
		if _, _, err := ParseMeminfo(strings.NewReader(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseMeminfo(%q) error = %v; want errors.Is ErrMalformed", in, err)
		}
	}
}

func TestParseUptime(t *testing.T) {
	maxDur := time.Duration(math.MaxInt64)
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr string
	}{
		{name: "real file", in: "350735.47 234388.90\n", want: 350735*time.Second + 470*time.Millisecond},
		{name: "single field", in: "12.5", want: 12500 * time.Millisecond},
		{name: "integer", in: "60 0", want: time.Minute},
		{name: "zero", in: "0.00 0.00\n", want: 0},
		{name: "surrounding whitespace", in: "  \t1.01  2.00 \n", want: 1010 * time.Millisecond},
		{name: "nanosecond precision", in: "1.000000001", want: time.Second + 1},
		{name: "sub-nanosecond truncated", in: "1.0000000019", want: time.Second + 1},
		{name: "max duration", in: "9223372036.854775807", want: maxDur},

		{name: "empty", in: "", wantErr: "want 1 or 2 fields, got 0"},
		{name: "whitespace only", in: " \n", wantErr: "want 1 or 2 fields, got 0"},
		{name: "too many fields", in: "1.0 2.0 3.0", wantErr: "want 1 or 2 fields, got 3"},
		{name: "non-numeric", in: "abc 1.0", wantErr: "not a non-negative decimal"},
		{name: "bad idle field", in: "1.0 abc", wantErr: "field 2"},
		{name: "negative", in: "-1.0 2.0", wantErr: "not a non-negative decimal"},
		{name: "plus sign", in: "+1.0", wantErr: "not a non-negative decimal"},
		{name: "exponent", in: "1e3", wantErr: "not a non-negative decimal"},
		{name: "NaN", in: "NaN", wantErr: "not a non-negative decimal"},
		{name: "Inf", in: "Inf", wantErr: "not a non-negative decimal"},
		{name: "hex", in: "0x10", wantErr: "not a non-negative decimal"},
		{name: "trailing dot", in: "1.", wantErr: "not a non-negative decimal"},
		{name: "leading dot", in: ".5", wantErr: "not a non-negative decimal"},
		{name: "comma decimal", in: "1,5", wantErr: "not a non-negative decimal"},
		{name: "just past max duration", in: "9223372036.854775808", wantErr: "overflows time.Duration"},
		{name: "seconds overflow duration", in: "9223372037", wantErr: "overflows time.Duration"},
		{name: "seconds overflow uint64", in: "99999999999999999999999.0", wantErr: "overflows time.Duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUptime(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseUptime(%q) = %v, nil; want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("ParseUptime(%q) error = %q; want ErrMalformed containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseUptime(%q) unexpected error: %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseUptime(%q) = %v; want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseLoadavg(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    float64
		wantErr string
	}{
		{name: "real file", in: "0.52 0.58 0.59 1/467 12345\n", want: 0.52},
		{name: "three fields", in: "1.00 2.00 3.00", want: 1},
		{name: "integer", in: "3 2 1 1/1 1", want: 3},
		{name: "zero", in: "0.00 0.00 0.00 0/0 0", want: 0},
		{name: "large load", in: "1234.56 1.00 1.00 1/1 1", want: 1234.56},
		{name: "later fields not interpreted", in: "0.10 0.20 0.30 junk junk junk", want: 0.10},

		{name: "empty", in: "", wantErr: "want at least 3 fields, got 0"},
		{name: "too few fields", in: "0.52 0.58", wantErr: "want at least 3 fields, got 2"},
		{name: "non-numeric", in: "abc 0.58 0.59 1/467 12345", wantErr: "field 1"},
		{name: "bad 15-minute field", in: "0.52 0.58 x 1/467 12345", wantErr: "field 3"},
		{name: "negative", in: "-0.52 0.58 0.59", wantErr: "not a non-negative decimal"},
		{name: "NaN", in: "NaN 0.58 0.59", wantErr: "not a non-negative decimal"},
		{name: "Inf", in: "+Inf 0.58 0.59", wantErr: "not a non-negative decimal"},
		{name: "exponent", in: "1e400 0.58 0.59", wantErr: "not a non-negative decimal"},
		{name: "out of float64 range", in: strings.Repeat("9", 400) + " 0.58 0.59", wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLoadavg(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseLoadavg(%q) = %v, nil; want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrMalformed) {
					t.Fatalf("ParseLoadavg(%q) error = %q; want ErrMalformed containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseLoadavg(%q) unexpected error: %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseLoadavg(%q) = %v; want %v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseMeminfo(f *testing.F) {
	for _, seed := range []string{
		realMeminfo,
		"",
		"MemTotal: 1 kB\n",
		"MemTotal: 18014398509481983 kB\nMemAvailable: 0 kB\n",
		"MemTotal: 18014398509481984 kB\n",
		"MemTotal: -1 kB\n",
		"MemTotal:\n",
		"MemTotal: 1 kB\nMemTotal: 1 kB\n",
		"garbage",
		"\x00:\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		total, avail, err := ParseMeminfo(strings.NewReader(string(data)))
		if err != nil {
			if total != 0 || avail != 0 {
				t.Fatalf("error %v returned with non-zero values %d, %d", err, total, avail)
			}
			return
		}
		if total%1024 != 0 || avail%1024 != 0 {
			t.Fatalf("values not whole kB: total=%d available=%d", total, avail)
		}
		// Parsing is deterministic.
		total2, avail2, err2 := ParseMeminfo(strings.NewReader(string(data)))
		if err2 != nil || total2 != total || avail2 != avail {
			t.Fatalf("second parse = %d, %d, %v; first = %d, %d, nil", total2, avail2, err2, total, avail)
		}
	})
}
