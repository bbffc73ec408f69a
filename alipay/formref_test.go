package alipay

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/ascii"
)

// decodeFormBefore is decodeForm as it was before the single-pass scanner
// (pair by pair, a stack buffer copied into the fields' string): the
// reference that FuzzDecodeFormAgrees compares the scanner with.
func decodeFormBefore(body []byte) (fields form, validUTF8 bool, err error) {
	if len(body) == 0 {
		return nil, false, ErrEmptyBody
	}
	var decodedBuf [4 << 10]byte
	decoded := decodedBuf[:]
	if len(body) > len(decoded) {
		decoded = make([]byte, len(body)) // decoding never grows the input
	}
	var spanBuf [64]span
	spans := spanBuf[:0]
	n := 0 // the end of the decoded bytes
	for rest := body; ; {
		pairEnd := bytes.IndexByte(rest, '&')
		if pairEnd < 0 {
			pairEnd = len(rest)
		}
		if pair := rest[:pairEnd]; len(pair) > 0 { // an empty pair ("a=1&&b=2", a trailing "&") carries nothing
			keyStart, keyEnd := n, -1 // keyEnd is -1 until the pair's first '='
			for i := 0; i < len(pair); {
				switch pair[i] {
				case '+':
					decoded[n] = ' '
					n++
					i++
				case '%':
					if i+2 >= len(pair) || !ascii.IsHex(pair[i+1]) || !ascii.IsHex(pair[i+2]) {
						return nil, false, pairError(pair)
					}
					decoded[n] = ascii.Unhex(pair[i+1])<<4 | ascii.Unhex(pair[i+2])
					n++
					i += 3
				case '=':
					if keyEnd < 0 {
						keyEnd = n
					} else {
						decoded[n] = '=' // only the first '=' ends the key
						n++
					}
					i++
				default:
					j := i + 1 + indexSpecial(pair[i+1:])
					n += copy(decoded[n:], pair[i:j])
					i = j
				}
			}
			if keyEnd < 0 {
				keyEnd = n // "a": a key without a value
			}
			if keyEnd == keyStart {
				return nil, false, pairError(pair)
			}
			spans = append(spans, span{prefix: keyPrefix(decoded[keyStart:keyEnd]), keyStart: keyStart, keyEnd: keyEnd, valueEnd: n})
		}
		if pairEnd == len(rest) {
			break
		}
		rest = rest[pairEnd+1:]
	}
	if len(spans) == 0 {
		return nil, false, ErrEmptyBody
	}

	// The keys and values tile decoded[:n]: each one is valid UTF-8 if and
	// only if the whole is and each one starts at a rune boundary.
	text := decoded[:n]
	validUTF8 = utf8.Valid(text)
	for _, s := range spans {
		if !validUTF8 {
			break
		}
		validUTF8 = (s.keyStart == n || utf8.RuneStart(text[s.keyStart])) && (s.keyEnd == n || utf8.RuneStart(text[s.keyEnd]))
	}

	all := string(text)
	fields = make(form, len(spans))
	if len(spans) <= len(spanBuf) {
		// Sort the first seven bytes of each key with its index in the low
		// byte, as plain integers (no comparison function), then order the
		// keys that share their first seven bytes.
		var packedBuf [len(spanBuf)]uint64
		packed := packedBuf[:len(spans)]
		for i, s := range spans {
			packed[i] = s.prefix&^0xff | uint64(i)
		}
		slices.Sort(packed)
		for i, p := range packed {
			s := spans[p&0xff]
			fields[i] = Param{Key: all[s.keyStart:s.keyEnd], Value: all[s.keyEnd:s.valueEnd]}
		}
		for start := 0; start < len(packed); {
			end := start + 1
			for end < len(packed) && packed[end]>>8 == packed[start]>>8 {
				end++
			}
			if end-start > 1 {
				slices.SortFunc(fields[start:end], func(a, b Param) int { return strings.Compare(a.Key, b.Key) })
			}
			start = end
		}
	} else {
		slices.SortFunc(spans, func(a, b span) int { return compareSpans(a, b, decoded) })
		for i, s := range spans {
			fields[i] = Param{Key: all[s.keyStart:s.keyEnd], Value: all[s.keyEnd:s.valueEnd]}
		}
	}
	for i, f := range fields {
		if !isParameterName(f.Key) {
			return nil, false, refuse(ErrParameterName, fmt.Sprintf("parameter name %q is not ASCII letters, digits and _ (a name holding '=' or '&' would change how the signed string splits)", Truncate(f.Key)))
		}
		if i > 0 && f.Key == fields[i-1].Key {
			return nil, false, refuse(ErrDuplicateParameter, fmt.Sprintf("parameter %q appears more than once", Truncate(f.Key)))
		}
	}
	return fields, validUTF8, nil
}

// FuzzDecodeFormAgrees: the single-pass decodeForm gives exactly what the
// pair-by-pair one gave (the same fields, UTF-8 verdict and error text) on
// any body, and reports a '&' in a value exactly when there is one.
func FuzzDecodeFormAgrees(f *testing.F) {
	for _, body := range fuzzBodies(f) {
		f.Add([]byte(body))
	}
	for _, body := range []string{"a=%26&b=1", "a%26=1", "a=1%", "abcdefgh=%2", "abcdefghijklmnop=%zz&q=1", "a=1&abcdefghij%41=2&", "&&&&&&&&&&&&", "========", "a=+++++++++%20"} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fields, facts, err := decodeForm(body)
		wantFields, wantUTF8, wantErr := decodeFormBefore(body)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("error %v, before %v", err, wantErr)
		}
		if err != nil {
			return
		}
		if !slices.Equal(fields, wantFields) || facts.validUTF8 != wantUTF8 {
			t.Fatalf("fields %q (UTF-8 %v), before %q (UTF-8 %v)", fields, facts.validUTF8, wantFields, wantUTF8)
		}
		ampersand := false
		for _, p := range fields {
			ampersand = ampersand || strings.Contains(p.Value, "&")
		}
		if facts.ampersand != ampersand {
			t.Fatalf("ampersand %v, the values say %v", facts.ampersand, ampersand)
		}
	})
}
