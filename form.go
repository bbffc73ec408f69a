package alipaynotify

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
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
// It runs for every request, so it costs two allocations whatever the number
// of fields: one string that all fields share, and the slice of fields. The
// decoding and the sorting happen in buffers on the stack, large enough for
// any real notification (1 to 3 KiB, 20 to 40 fields); a larger body only
// costs more allocations.
func parseForm(body []byte) (form, error) {
	if len(body) == 0 {
		return nil, errEmptyBody
	}
	var decodedBuf [4 << 10]byte
	decoded := decodedBuf[:]
	if len(body) > len(decoded) {
		decoded = make([]byte, len(body)) // decoding never grows the input
	}
	var spanBuf [64]span
	spans := spanBuf[:0]
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
		spans = append(spans, span{
			prefix:   keyPrefix(decoded[keyStart:keyEnd]),
			keyStart: keyStart, keyEnd: keyEnd, valueEnd: n,
		})
	}
	if len(spans) == 0 {
		return nil, errEmptyBody
	}

	// Sort the spans, which hold no pointers, rather than the fields.
	slices.SortFunc(spans, func(a, b span) int {
		if a.prefix != b.prefix {
			return cmp.Compare(a.prefix, b.prefix)
		}
		return bytes.Compare(decoded[a.keyStart:a.keyEnd], decoded[b.keyStart:b.keyEnd])
	})
	for i := 1; i < len(spans); i++ {
		a, b := spans[i-1], spans[i]
		if a.prefix == b.prefix && bytes.Equal(decoded[a.keyStart:a.keyEnd], decoded[b.keyStart:b.keyEnd]) {
			return nil, fmt.Errorf("parameter %q appears more than once", truncate(decoded[b.keyStart:b.keyEnd]))
		}
	}
	all := string(decoded[:n])
	fields := make(form, len(spans))
	for i, s := range spans {
		fields[i] = field{key: all[s.keyStart:s.keyEnd], value: all[s.keyEnd:s.valueEnd]}
	}
	return fields, nil
}

// span locates one field in the decoded body. prefix is the first eight bytes
// of the key, big-endian and zero-padded: comparing prefixes orders most keys
// without looking at the bytes.
type span struct {
	prefix                     uint64
	keyStart, keyEnd, valueEnd int
}

func keyPrefix(key []byte) uint64 {
	var p [8]byte
	copy(p[:], key)
	return binary.BigEndian.Uint64(p[:])
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

// cutByte splits s around the first sep; after is nil when sep is absent.
func cutByte(s []byte, sep byte) (before, after []byte) {
	if i := bytes.IndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, nil
}

// unescapeInto percent-decodes src into dst at offset n ('+' is a space,
// %XX is one byte) and returns the new offset. The runs between escapes are
// copied in bulk. A malformed escape is an error rather than passed through:
// Alipay always encodes correctly, so a broken escape means the body was
// damaged or hand-made.
func unescapeInto(dst []byte, n int, src []byte) (int, error) {
	for len(src) > 0 {
		switch src[0] {
		case '+':
			dst[n] = ' '
			src = src[1:]
		case '%':
			if len(src) < 3 || !isHex(src[1]) || !isHex(src[2]) {
				return n, fmt.Errorf("malformed percent-escape %q", truncate(src[:min(3, len(src))]))
			}
			dst[n] = unhex(src[1])<<4 | unhex(src[2])
			src = src[3:]
		default:
			i := indexEscape(src)
			n += copy(dst[n:], src[:i])
			src = src[i:]
			continue
		}
		n++
	}
	return n, nil
}

// indexEscape returns the index of the first '%' or '+' in s, or len(s). It
// looks at eight bytes at a time (the classic "word has a zero byte" test on s
// XOR '%' and on s XOR '+'): a base64 sign and most values are long runs
// without escapes.
func indexEscape(s []byte) int {
	const (
		ones    = 0x0101010101010101
		highs   = 0x8080808080808080
		percent = '%' * ones
		plus    = '+' * ones
	)
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := binary.LittleEndian.Uint64(s[i:])
		a, b := w^percent, w^plus
		// The lowest set bit of the mask is exact, which is all we need
		// (higher ones can be false positives).
		if mask := ((a-ones)&^a | (b-ones)&^b) & highs; mask != 0 {
			return i + bits.TrailingZeros64(mask)/8
		}
	}
	for ; i < len(s); i++ {
		if s[i] == '%' || s[i] == '+' {
			return i
		}
	}
	return len(s)
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
