package alipaynotify

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// field is one parameter of a notification, percent-decoded exactly once.
// Key and value are the bytes Alipay sent, in the notification's charset
// (UTF-8 or GBK), because those are the bytes Alipay signed.
type field struct {
	key, value string
}

// form is a parsed notification body: its fields sorted by key in byte
// order, which is the order of Alipay's signed string, with no key twice.
type form []field

// errEmptyBody is returned for a request without a body.
var errEmptyBody = errors.New("empty body")

// parseForm decodes an application/x-www-form-urlencoded body.
//
// It does its own decoding rather than use net/http because Alipay's
// Content-Type header is malformed (net/http reports an error for it), because
// a repeated key must be refused rather than merged, and because it keeps the
// raw bytes of every value: no charset conversion, no second unescaping (a
// percent-encoded passback_params stays percent-encoded, as it was signed).
//
// All fields share one string, so a body costs three allocations whatever its
// number of fields.
func parseForm(body []byte) (form, error) {
	if len(body) == 0 {
		return nil, errEmptyBody
	}
	decoded := make([]byte, len(body)) // decoding never grows the input
	type span struct{ keyEnd, valueEnd int }
	spans := make([]span, 0, countFields(body))
	n := 0
	for rest := body; len(rest) > 0; {
		var pair []byte
		pair, rest = cutByte(rest, '&')
		if len(pair) == 0 {
			continue // "a=1&&b=2" or a trailing "&": nothing was sent there
		}
		rawKey, rawValue := cutByte(pair, '=')
		keyStart := n
		var err error
		if n, err = unescapeInto(decoded, n, rawKey); err != nil {
			return nil, fmt.Errorf("parameter name %q: %w", truncate(rawKey), err)
		}
		if n == keyStart {
			return nil, errors.New("a parameter has an empty name")
		}
		keyEnd := n
		if n, err = unescapeInto(decoded, n, rawValue); err != nil {
			return nil, fmt.Errorf("parameter %q: %w", truncate(decoded[keyStart:keyEnd]), err)
		}
		spans = append(spans, span{keyEnd: keyEnd, valueEnd: n})
	}
	if len(spans) == 0 {
		return nil, errEmptyBody
	}

	all := string(decoded[:n])
	fields := make(form, len(spans))
	start := 0
	for i, s := range spans {
		fields[i] = field{key: all[start:s.keyEnd], value: all[s.keyEnd:s.valueEnd]}
		start = s.valueEnd
	}
	slices.SortFunc(fields, func(a, b field) int { return strings.Compare(a.key, b.key) })
	for i := 1; i < len(fields); i++ {
		if fields[i].key == fields[i-1].key {
			return nil, fmt.Errorf("parameter %q appears more than once", truncate([]byte(fields[i].key)))
		}
	}
	return fields, nil
}

// get returns the value of key, or "" when the notification does not carry it.
func (f form) get(key string) string {
	i, found := slices.BinarySearchFunc(f, key, func(fl field, k string) int { return strings.Compare(fl.key, k) })
	if !found {
		return ""
	}
	return f[i].value
}

// has reports whether the notification carries key, even with an empty value.
func (f form) has(key string) bool {
	_, found := slices.BinarySearchFunc(f, key, func(fl field, k string) int { return strings.Compare(fl.key, k) })
	return found
}

// countFields is an upper bound of the number of fields in body.
func countFields(body []byte) int {
	n := 1
	for _, c := range body {
		if c == '&' {
			n++
		}
	}
	return n
}

// cutByte splits s around the first sep; after is nil when sep is absent.
func cutByte(s []byte, sep byte) (before, after []byte) {
	for i, c := range s {
		if c == sep {
			return s[:i], s[i+1:]
		}
	}
	return s, nil
}

// unescapeInto percent-decodes src into dst at offset n ('+' is a space,
// %XX is one byte) and returns the new offset. A malformed escape is an error
// rather than passed through: Alipay always encodes correctly, so a broken
// escape means the body was damaged or hand-made.
func unescapeInto(dst []byte, n int, src []byte) (int, error) {
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '+':
			dst[n] = ' '
		case '%':
			if i+2 >= len(src) || !isHex(src[i+1]) || !isHex(src[i+2]) {
				return n, fmt.Errorf("malformed percent-escape %q", truncate(src[i:min(i+3, len(src))]))
			}
			dst[n] = unhex(src[i+1])<<4 | unhex(src[i+2])
			i += 2
		default:
			dst[n] = c
		}
		n++
	}
	return n, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// truncate keeps log lines and error messages short when a hostile body
// carries huge names or values.
func truncate(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
