package alipaynotify

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// appendJSONStringBefore is appendJSONString as it was before runs were
// copied whole: the reference of FuzzAppendJSONString.
func appendJSONStringBefore(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...) // unreachable: text was validated
		case r == '\u2028' || r == '\u2029':
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// FuzzAppendJSONString: appendJSONString writes exactly what the byte by
// byte version wrote, on any string (invalid UTF-8 included, which the
// webhook's validated text never holds).
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\n\n\r\t\x01\u2028\u2029<>&中", "\x7f\x1f", "end\u2029", "中文 text"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := appendJSONString([]byte("x"), s), appendJSONStringBefore([]byte("x"), s); !bytes.Equal(got, want) {
			t.Fatalf("%q: %q, before %q", s, got, want)
		}
	})
}
