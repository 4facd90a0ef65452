package pairing

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
)

// Token format: TokenChars characters of Crockford's base32 alphabet (digits
// and upper-case letters without I, L, O and U), 5 bits each, shown in groups
// of four separated by dashes, e.g. "K7QF-M2XD-9WRT-B4NC-HPZE".
const (
	// TokenChars is the number of characters in a token, not counting
	// dashes. A token carries 5 bits per character: 100 bits.
	TokenChars = 20
	// TokenBits is the entropy of a token made by NewToken.
	TokenBits  = 5 * TokenChars
	tokenGroup = 4
	// tokenAlphabet is Crockford's base32 alphabet.
	tokenAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)

// MaxTokenTTL is the longest lifetime NewToken accepts.
const MaxTokenTTL = 24 * time.Hour

// DefaultTokenTTL is a sensible lifetime for a pairing token: long enough to
// walk from one console to the other, short enough to limit exposure.
const DefaultTokenTTL = 15 * time.Minute

// Token is a one-time pairing token, made on the joining node by NewToken
// and typed by the operator on the deploying node.
//
// Value is secret until it is used: show it once to the operator and never
// log it. String and LogValue redact it, so printing or logging a Token by
// mistake does not reveal it.
type Token struct {
	// Value is the token in canonical form: TokenChars characters of
	// Crockford's base32 in dash-separated groups of four, for example
	// "K7QF-M2XD-9WRT-B4NC-HPZE".
	Value string
	// ExpiresAt is when the token stops being accepted.
	ExpiresAt time.Time
}

// String returns a description of t that does not reveal its value.
func (t Token) String() string {
	return "pairing token (redacted, expires " + t.ExpiresAt.UTC().Format(time.RFC3339) + ")"
}

// LogValue implements slog.LogValuer: a logged Token shows only its expiry.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("value", "REDACTED"), slog.Time("expires_at", t.ExpiresAt))
}

// NewToken makes a new pairing token of TokenBits random bits from
// crypto/rand, valid from now for ttl (which must be positive and at most
// MaxTokenTTL). It is safe for concurrent use.
func NewToken(ttl time.Duration, now time.Time) (Token, error) {
	if ttl <= 0 || ttl > MaxTokenTTL {
		return Token{}, fmt.Errorf("pairing: new token: lifetime %s out of range (0, %s]", ttl, MaxTokenTTL)
	}
	var raw [TokenChars]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Token{}, fmt.Errorf("pairing: new token: %w", err)
	}
	defer clear(raw[:])
	var chars [TokenChars]byte
	defer clear(chars[:])
	for i, b := range raw {
		// 256 is a multiple of 32, so the low 5 bits of a uniform byte are
		// uniform: exactly 5 bits of entropy per character.
		chars[i] = tokenAlphabet[b&31]
	}
	return Token{Value: group(chars[:]), ExpiresAt: now.Add(ttl)}, nil
}

// ParseToken checks a token as typed by an operator and returns it in
// canonical form (like Token.Value). It is case-insensitive, ignores dashes
// and white space anywhere, and, as Crockford's base32 specifies, reads the
// easily confused letters O as 0 and I and L as 1. The error says what is
// wrong (length or character) without repeating the token. It is safe for
// concurrent use.
func ParseToken(s string) (string, error) {
	var chars [TokenChars]byte
	defer clear(chars[:])
	n := 0
	for _, r := range s {
		if r == '-' || unicode.IsSpace(r) {
			continue
		}
		c, ok := tokenChar(r)
		if !ok {
			return "", fmt.Errorf("pairing: invalid token: character %q is not allowed (a token has only digits and letters A-Z except U)", r)
		}
		if n < TokenChars {
			chars[n] = c
		}
		n++
	}
	if n == 0 {
		return "", errors.New("pairing: invalid token: it is empty")
	}
	if n != TokenChars {
		return "", fmt.Errorf("pairing: invalid token: it has %d characters, want %d (not counting dashes and spaces)", n, TokenChars)
	}
	return group(chars[:]), nil
}

// tokenChar maps a typed character to its canonical token character.
func tokenChar(r rune) (byte, bool) {
	if r >= 'a' && r <= 'z' {
		r -= 'a' - 'A'
	}
	switch r {
	case 'O':
		return '0', true
	case 'I', 'L':
		return '1', true
	}
	if r > unicode.MaxASCII || !strings.ContainsRune(tokenAlphabet, r) {
		return 0, false
	}
	return byte(r), true
}

// group formats canonical characters in dash-separated groups.
func group(chars []byte) string {
	var b strings.Builder
	b.Grow(len(chars) + len(chars)/tokenGroup)
	for i, c := range chars {
		if i > 0 && i%tokenGroup == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(c)
	}
	return b.String()
}
