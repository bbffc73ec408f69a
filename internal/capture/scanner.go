package capture

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// scanner walks the text of a logged parameter dump, a Ruby hash or a PHP
// array: it skips white space, consumes punctuation, and reads the quoted
// strings of either language.
type scanner struct {
	s string
	i int // the offset of the next byte
}

// skipSpace skips spaces, tabs and line breaks.
func (p *scanner) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\n' || p.s[p.i] == '\t' || p.s[p.i] == '\r') {
		p.i++
	}
}

// consume skips tok if the text continues with it, and reports whether it did.
func (p *scanner) consume(tok string) bool {
	if strings.HasPrefix(p.s[p.i:], tok) {
		p.i += len(tok)
		return true
	}
	return false
}

// at reports whether the text continues with prefix, without consuming it.
func (p *scanner) at(prefix string) bool {
	return strings.HasPrefix(p.s[p.i:], prefix)
}

// rubyString reads a double-quoted Ruby string as String#inspect writes it,
// with its escapes.
func (p *scanner) rubyString() (string, error) {
	if !p.consume(`"`) {
		return "", errors.New("want a double-quoted string")
	}
	var b []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			return string(b), nil
		case '\\':
			if p.i >= len(p.s) {
				return "", errors.New("unterminated escape")
			}
			e := p.s[p.i]
			p.i++
			if r, ok := rubyEscapes[e]; ok {
				b = append(b, r)
				continue
			}
			switch e {
			case 'x':
				if p.i+2 > len(p.s) {
					return "", errors.New(`short \x escape`)
				}
				v, err := strconv.ParseUint(p.s[p.i:p.i+2], 16, 8)
				if err != nil {
					return "", errors.New(`bad \x escape`)
				}
				b = append(b, byte(v))
				p.i += 2
			case 'u':
				var hex string
				if p.at("{") {
					end := strings.IndexByte(p.s[p.i:], '}')
					if end < 0 {
						return "", errors.New(`unterminated \u{...} escape`)
					}
					hex, p.i = p.s[p.i+1:p.i+end], p.i+end+1
				} else {
					if p.i+4 > len(p.s) {
						return "", errors.New(`short \u escape`)
					}
					hex, p.i = p.s[p.i:p.i+4], p.i+4
				}
				v, err := strconv.ParseUint(hex, 16, 32)
				if err != nil {
					return "", errors.New(`bad \u escape`)
				}
				b = utf8.AppendRune(b, rune(v))
			default: // \" \\ \# and anything else stand for themselves
				b = append(b, e)
			}
		default:
			b = append(b, c)
		}
	}
	return "", errors.New("unterminated string (the log line may be cut off)")
}

// rubyEscapes are the one-letter escapes of a double-quoted Ruby string
// and the bytes they stand for.
var rubyEscapes = map[byte]byte{
	'n': '\n', 't': '\t', 'r': '\r', 'e': 0x1b, 'f': '\f', 'v': '\v', 'a': 0x07, 'b': '\b', '0': 0,
}

// phpString reads a single-quoted PHP string as var_export writes it
// (escapes: \' and \\).
func (p *scanner) phpString() (string, error) {
	if !p.consume("'") {
		return "", errors.New("want a single-quoted string")
	}
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\'':
			return b.String(), nil
		case c == '\\' && p.i < len(p.s) && (p.s[p.i] == '\'' || p.s[p.i] == '\\'):
			b.WriteByte(p.s[p.i])
			p.i++
		default:
			b.WriteByte(c)
		}
	}
	return "", errors.New("unterminated string")
}
