// Package commands defines what a hapair console command means, independent
// of how it arrives (an interactive SSH console with a ">>" prompt, or a
// script running "ssh host ha_status --json"): the line syntax (Split), the
// command registry with prefix lookup and completion (Registry), the single
// dispatch path that enforces the admin role gate (Registry.Dispatch), the
// exit codes, and the built-in help.
//
// Nothing here ever reaches a shell. The line syntax is deliberately tiny and
// rejects, with an explanation, every character a shell would interpret, so
// that an operator who types "ha_status; reboot" is told why instead of
// having part of the line silently ignored or reinterpreted.
package commands

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLineBytes is the longest console line Split accepts, in bytes.
const MaxLineBytes = 4096

// MaxWords is the largest number of words Split accepts on one line.
const MaxWords = 64

// SyntaxError reports a console line that Split rejects.
//
// Pos is the 1-based column of the offending character, counted in
// characters (runes; an invalid byte counts as one column). Pos is 0 when the
// error concerns the line as a whole (for example a line that is too long).
// Msg is a complete sentence meant to be shown to the operator as is; it
// already names the column.
type SyntaxError struct {
	Pos int
	Msg string
}

// Error returns Msg.
func (e *SyntaxError) Error() string { return e.Msg }

const noShell = "the console runs one command at a time, nothing reaches a shell"

// shellReasons explains, for every character a shell would interpret, why
// the console refuses it.
var shellReasons = map[rune]string{
	';':  noShell,
	'|':  "there are no pipes: " + noShell,
	'&':  "commands cannot be chained or run in the background: " + noShell,
	'$':  "there are no variables or command substitution: nothing reaches a shell",
	'`':  "there is no command substitution: nothing reaches a shell",
	'<':  "there is no redirection: nothing reaches a shell",
	'>':  "there is no redirection (use --json for output a script can read): nothing reaches a shell",
	'(':  "there are no subshells or groups: " + noShell,
	')':  "there are no subshells or groups: " + noShell,
	'{':  "there are no groups or brace expansion: nothing reaches a shell",
	'}':  "there are no groups or brace expansion: nothing reaches a shell",
	'*':  "there are no wildcards: write names out in full",
	'?':  "there are no wildcards: write names out in full (type help for help)",
	'[':  "there are no wildcards: write names out in full",
	']':  "there are no wildcards: write names out in full",
	'!':  "there is no history expansion: nothing reaches a shell",
	'~':  "there is no home-directory expansion: write paths out in full",
	'#':  "there are no comments: nothing reaches a shell",
	'\\': `a backslash is only allowed inside double quotes, as \" or \\`,
}

const allowedPunct = "-_.:/=@,"

// wordRune reports whether r may appear in a word, quoted or not.
func wordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' ||
			strings.ContainsRune(allowedPunct, r)
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// charError builds the error for a character that is not allowed at col.
func charError(r rune, col int) *SyntaxError {
	if r < 0x20 || r == 0x7f || unicode.IsControl(r) {
		return &SyntaxError{Pos: col, Msg: fmt.Sprintf(
			"control character %U at column %d is not allowed: type the command as plain text", r, col)}
	}
	reason, ok := shellReasons[r]
	if !ok {
		reason = "words may only contain letters, digits and " + allowedPunct +
			", and quotes around words with spaces"
	}
	return &SyntaxError{Pos: col, Msg: fmt.Sprintf(
		"character %s at column %d is not allowed: %s", strconv.QuoteToASCII(string(r)), col, reason)}
}

// Split splits one console line into words.
//
// Words are separated by spaces or tabs. A word may contain ASCII letters and
// digits, Unicode letters and digits, and the characters - _ . : / = @ ,
// Single quotes group characters (including spaces) literally, with no
// escapes; double quotes do the same and also accept the escapes \" and \\.
// Quoted and unquoted parts next to each other form one word, and "" is an
// empty word. Inside quotes, the other kind of quote is an ordinary
// character.
//
// Everything a shell would interpret is an error and is never interpreted:
// ; | & $ ` < > ( ) { } [ ] * ? ! ~ #, a backslash outside double quotes,
// control characters (tab is a separator), invalid UTF-8, an unterminated
// quote, a line longer than MaxLineBytes bytes and more than MaxWords words.
// Any other character not listed above is rejected too. The error is always
// a *SyntaxError. The line must not include its terminating newline.
//
// An empty or blank line yields no words and no error.
func Split(line string) ([]string, error) {
	if len(line) > MaxLineBytes {
		return nil, &SyntaxError{Msg: fmt.Sprintf(
			"the line is %d bytes long; the console accepts at most %d", len(line), MaxLineBytes)}
	}
	var (
		words    []string
		cur      strings.Builder
		inWord   bool
		quote    rune // 0, '\'' or '"'
		quoteCol int
		col      int
	)
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRuneInString(line[i:])
		col++
		if r == utf8.RuneError && size == 1 {
			return nil, &SyntaxError{Pos: col, Msg: fmt.Sprintf(
				"byte 0x%02x at column %d is not valid UTF-8: type the command as plain text", line[i], col)}
		}
		i += size
		switch quote {
		case '\'':
			switch {
			case r == '\'':
				quote = 0
			case r == ' ' || r == '\t' || r == '"' || wordRune(r):
				cur.WriteRune(r)
			case r == '\\':
				return nil, &SyntaxError{Pos: col, Msg: fmt.Sprintf(
					`character "\\" at column %d is not allowed: there are no escapes inside single quotes; use double quotes and \\ for a backslash`, col)}
			default:
				return nil, charError(r, col)
			}
		case '"':
			switch {
			case r == '"':
				quote = 0
			case r == '\\':
				if i >= len(line) {
					return nil, unterminated(quote, quoteCol)
				}
				next, nsize := utf8.DecodeRuneInString(line[i:])
				if next != '"' && next != '\\' {
					return nil, &SyntaxError{Pos: col, Msg: fmt.Sprintf(
						`the backslash at column %d does not start a valid escape: inside double quotes only \" and \\ are allowed`, col)}
				}
				i += nsize
				col++
				cur.WriteRune(next)
			case r == ' ' || r == '\t' || r == '\'' || wordRune(r):
				cur.WriteRune(r)
			default:
				return nil, charError(r, col)
			}
		default:
			if r == ' ' || r == '\t' {
				if inWord {
					words = append(words, cur.String())
					cur.Reset()
					inWord = false
				}
				continue
			}
			if !inWord {
				if len(words) == MaxWords {
					return nil, &SyntaxError{Pos: col, Msg: fmt.Sprintf(
						"word %d starts at column %d: the console accepts at most %d words on a line", MaxWords+1, col, MaxWords)}
				}
				inWord = true
			}
			switch {
			case r == '\'' || r == '"':
				quote, quoteCol = r, col
			case wordRune(r):
				cur.WriteRune(r)
			default:
				return nil, charError(r, col)
			}
		}
	}
	if quote != 0 {
		return nil, unterminated(quote, quoteCol)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func unterminated(quote rune, col int) *SyntaxError {
	kind := "double"
	if quote == '\'' {
		kind = "single"
	}
	return &SyntaxError{Pos: col, Msg: fmt.Sprintf(
		"the %s quote at column %d is never closed: close it with %c", kind, col, quote)}
}
