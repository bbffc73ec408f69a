package antom

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/ascii"
)

// Notification is the body of an Antom notification that passed the body
// rules of ParseNotification.
type Notification struct {
	// NotifyType is the top-level "notifyType" string, unescaped
	// (PAYMENT_RESULT, REFUND_RESULT, ...), or "" when the body has none
	// or an empty one. Antom sends it in its notifications, but not in
	// every message it signs (responses have none), so its absence is left
	// to the caller to judge rather than refused here.
	NotifyType string

	// Body is the body as received, not a copy: the bytes that were
	// signed, to be forwarded unchanged (numbers keep their exact digits,
	// keys their order and spelling).
	Body []byte
}

// maxDepth bounds the nesting of the body, as encoding/json does (same
// limit), so that a hostile body cannot make the scanner recurse without
// end. Antom's bodies nest a handful of levels.
const maxDepth = 10000

// ParseNotification checks the body rules and extracts the notifyType.
//
// The body must be exactly one JSON object (RFC 8259), optionally
// surrounded by JSON white space; nothing else may follow it. It must be
// valid UTF-8 and may not contain a lone UTF-16 surrogate escape (such as
// "\ud800" unpaired): JSON parsers disagree on what those mean (an error,
// U+FFFD, or an unpaired code unit), and I-JSON (RFC 7493) forbids them.
// No object, at any depth, may have the same key twice, keys being
// compared after unescaping ("a" and "\u0061" are the same key): parsers
// disagree on which value wins. These rules make every reader of the body
// see the same document.
//
// A top-level notifyType must be a string; any other type (null included)
// is ErrMalformedBody, since a webhook type cannot be built from it
// without a conversion its reader might not make. An absent notifyType is
// not an error (see Notification.NotifyType).
//
// Numbers are validated but never converted, so no precision is lost: the
// body is returned as received. Errors wrap ErrMalformedBody, or
// ErrDuplicateKey (which wraps ErrMalformedBody).
func ParseNotification(body []byte) (*Notification, error) {
	n := &Notification{Body: body}
	if err := scanBody(body, &n.NotifyType); err != nil {
		return nil, err
	}
	return n, nil
}

// keysPool recycles the scanners' key lists, so that checking a body
// allocates nothing but the copies of escaped keys.
var keysPool = sync.Pool{New: func() any {
	keys := make([][]byte, 0, 32)
	return &keys
}}

// scanBody checks the body rules and stores the notifyType in *notifyType.
func scanBody(body []byte, notifyType *string) error {
	if !utf8.Valid(body) {
		return fmt.Errorf("%w: invalid UTF-8", ErrMalformedBody)
	}
	pooled := keysPool.Get().(*[][]byte)
	s := scanner{data: body, notifyType: notifyType, keys: (*pooled)[:0]}
	defer func() {
		// Clear what an error left, so that the pool keeps no reference to
		// this body; do not keep a list grown by a hostile body.
		clear(s.keys)
		if cap(s.keys) <= 1024 {
			*pooled = s.keys[:0]
			keysPool.Put(pooled)
		}
	}()
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrMalformedBody)
	}
	if err := s.value(0); err != nil {
		return err
	}
	s.skipSpace()
	if s.pos != len(s.data) {
		return s.syntaxError("data after the JSON object")
	}
	return nil
}

// scanner is a validating JSON scanner that builds nothing but the list of
// keys of the objects it is inside, to find duplicates. It is written here
// rather than taken from encoding/json because encoding/json replaces
// invalid UTF-8 and lone surrogates with U+FFFD instead of refusing them,
// and its Decoder allocates for every token.
type scanner struct {
	data []byte
	pos  int

	// keys holds the keys of the objects being scanned: an object's keys
	// are appended from its start, and removed when it ends. A key is a
	// slice of data when it has no escape, and a decoded copy otherwise.
	keys [][]byte

	notifyType *string
}

func (s *scanner) syntaxError(what string) error {
	return fmt.Errorf("%w: %s at byte %d", ErrMalformedBody, what, s.pos)
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value scans one JSON value at s.pos; depth is the number of enclosing
// objects and arrays.
func (s *scanner) value(depth int) error {
	if s.pos >= len(s.data) {
		return s.syntaxError("unexpected end")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		_, _, err := s.str()
		return err
	case c == '-' || isDigit(c):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.syntaxError("unexpected character")
}

func (s *scanner) literal(lit string) error {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return s.syntaxError("invalid literal")
	}
	s.pos += len(lit)
	return nil
}

func (s *scanner) object(depth int) error {
	if depth > maxDepth {
		return s.syntaxError("nesting too deep")
	}
	open := s.pos
	s.pos++ // '{'
	first := len(s.keys)
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.syntaxError("expected a key")
		}
		key, escaped, err := s.str()
		if err != nil {
			return err
		}
		if escaped {
			key = unescape(key)
		}
		s.keys = append(s.keys, key)
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.syntaxError("expected ':'")
		}
		s.pos++
		s.skipSpace()
		if depth == 1 && string(key) == "notifyType" {
			if err := s.notifyTypeValue(); err != nil {
				return err
			}
		} else if err := s.value(depth); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.syntaxError("unexpected end")
		}
		if s.data[s.pos] == '}' {
			s.pos++
			break
		}
		if s.data[s.pos] != ',' {
			return s.syntaxError("expected ',' or '}'")
		}
		s.pos++
		s.skipSpace()
	}
	// Sort this object's keys (they are the tail of s.keys: inner objects
	// removed theirs) and look for equal neighbours: O(n log n) for any
	// number of keys, and no map.
	keys := s.keys[first:]
	if len(keys) > 1 {
		slices.SortFunc(keys, bytes.Compare)
		for i := 1; i < len(keys); i++ {
			if bytes.Equal(keys[i-1], keys[i]) {
				return fmt.Errorf("%w: %q in the object at byte %d", ErrDuplicateKey, clip(string(keys[i])), open)
			}
		}
	}
	clear(keys) // let escaped keys' copies be collected
	s.keys = s.keys[:first]
	return nil
}

// notifyTypeValue scans the value of the top-level notifyType key.
func (s *scanner) notifyTypeValue() error {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		if err := s.value(1); err != nil {
			return err
		}
		return fmt.Errorf("%w: notifyType is not a string", ErrMalformedBody)
	}
	v, escaped, err := s.str()
	if err != nil {
		return err
	}
	if escaped {
		v = unescape(v)
	}
	*s.notifyType = string(v)
	return nil
}

func (s *scanner) array(depth int) error {
	if depth > maxDepth {
		return s.syntaxError("nesting too deep")
	}
	s.pos++ // '['
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for {
		if err := s.value(depth); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.syntaxError("unexpected end")
		}
		if s.data[s.pos] == ']' {
			s.pos++
			return nil
		}
		if s.data[s.pos] != ',' {
			return s.syntaxError("expected ',' or ']'")
		}
		s.pos++
		s.skipSpace()
	}
}

// str scans a string at s.pos and returns its content between the quotes
// (still escaped when escaped is true). The data is already known to be
// valid UTF-8, so only the JSON rules are checked here: no control
// character, valid escapes, surrogate escapes in pairs.
func (s *scanner) str() (content []byte, escaped bool, err error) {
	s.pos++ // '"'
	start := s.pos
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			content = s.data[start:s.pos]
			s.pos++
			return content, escaped, nil
		case c < 0x20:
			return nil, false, s.syntaxError("control character in a string")
		case c == '\\':
			escaped = true
			if err := s.escape(); err != nil {
				return nil, false, err
			}
		default:
			s.pos++
		}
	}
	return nil, false, s.syntaxError("unterminated string")
}

// escape checks the escape sequence at s.pos and moves past it.
func (s *scanner) escape() error {
	if s.pos+1 >= len(s.data) {
		return s.syntaxError("unterminated string")
	}
	switch s.data[s.pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		s.pos += 2
		return nil
	case 'u':
	default:
		return s.syntaxError("invalid escape")
	}
	r, ok := hex4(s.data[s.pos+2:])
	if !ok {
		return s.syntaxError("invalid \\u escape")
	}
	switch {
	case utf16.IsSurrogate(r) && r < 0xDC00: // a high surrogate: a low one must follow
		rest := s.data[s.pos+6:]
		if len(rest) < 6 || rest[0] != '\\' || rest[1] != 'u' {
			return s.syntaxError("lone surrogate escape")
		}
		if r2, ok := hex4(rest[2:]); !ok || r2 < 0xDC00 || r2 > 0xDFFF {
			return s.syntaxError("lone surrogate escape")
		}
		s.pos += 12
	case utf16.IsSurrogate(r): // a low surrogate with no high one before it
		return s.syntaxError("lone surrogate escape")
	default:
		s.pos += 6
	}
	return nil
}

// hex4 reads the 4 hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		if !ascii.IsHex(c) {
			return 0, false
		}
		r = r<<4 | rune(ascii.Unhex(c))
	}
	return r, true
}

// unescape decodes the content of a string that str validated, so that two
// spellings of one key compare equal.
func unescape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch b[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, _ := hex4(b[i+2:])
			if utf16.IsSurrogate(r) { // str checked that a low surrogate follows
				r2, _ := hex4(b[i+8:])
				r = utf16.DecodeRune(r, r2)
				i += 6
			}
			out = utf8.AppendRune(out, r)
			i += 6
			continue
		default: // '"', '\\', '/'
			out = append(out, b[i+1])
		}
		i += 2
	}
	return out
}

// number scans a number by RFC 8259's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	d := s.data
	if d[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
	case s.pos < len(d) && '1' <= d[s.pos] && d[s.pos] <= '9':
		s.digits()
	default:
		return s.syntaxError("invalid number")
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if s.digits() == 0 {
			return s.syntaxError("invalid number")
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return s.syntaxError("invalid number")
		}
	}
	return nil
}

func (s *scanner) digits() int {
	n := 0
	for s.pos < len(s.data) && isDigit(s.data[s.pos]) {
		s.pos++
		n++
	}
	return n
}
