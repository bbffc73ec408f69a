package alipay

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/ascii"
)

// Param is one parameter of a notification, percent-decoded exactly once.
// Key and Value are the bytes Alipay sent, in the notification's charset
// (UTF-8 or GBK), because those are the bytes Alipay signed.
type Param struct {
	Key, Value string
}

// form is a parsed notification body: its parameters sorted by key in byte
// order, which is the order of Alipay's signed string, with no key twice.
type form []Param

// ParseForm decodes an application/x-www-form-urlencoded body into its
// parameters, sorted by key in byte order (the order of the signed string).
//
// It does its own decoding rather than use net/http because Alipay's
// Content-Type header is malformed (net/http reports an error for it),
// because a repeated key must be refused rather than merged, and because it
// keeps the raw bytes of every value: no charset conversion, no second
// unescaping (a percent-encoded passback_params stays percent-encoded, as it
// was signed). A name other than ASCII letters, digits and '_' is refused
// (ErrParameterName), as is a name sent twice (ErrDuplicateParameter).
// Blank values are kept: ParseNotification drops them.
func ParseForm(body []byte) ([]Param, error) {
	params, _, err := decodeForm(body)
	return params, err
}

// formFacts are what decodeForm learns about a form at little cost while
// the decoded bytes are at hand.
type formFacts struct {
	// validUTF8: every key and value is valid UTF-8 (decodeCharset needs
	// it for UTF-8 bodies).
	validUTF8 bool
	// ampersand: some value holds '&', which can only come from an
	// escape (%26), since a raw '&' ends the pair. Without one no value
	// can hold a folded parameter (foldedParameter).
	ampersand bool
}

// decodeForm is parseForm, and also reports what formFacts says.
//
// It runs for every request, so it costs two allocations whatever the number
// of fields: the bytes that all fields share, and the slice of fields. It
// scans the body once, eight bytes at a time, copying each word to the
// decoded bytes as it goes and stopping only at the bytes that mean
// something ('&', '=', '%', '+'); it sorts the keys as integers. A body of
// more than 64 fields only costs more allocations.
func decodeForm(body []byte) (fields form, facts formFacts, err error) {
	if len(body) == 0 {
		return nil, facts, ErrEmptyBody
	}
	// Decoding never grows the input, so a buffer the size of the body
	// holds every key and value. Nothing writes to it once the scan is
	// over: it becomes, without a copy, the string the fields share.
	decoded := make([]byte, len(body))
	var spanBuf [64]span
	spans := spanBuf[:0]
	n := 0                    // the end of the decoded bytes; n <= i
	pairStart := 0            // where the current pair starts in body
	keyStart, keyEnd := 0, -1 // in decoded; keyEnd is -1 until the pair's first '='
	for i := 0; ; {
		// Copy the run of ordinary bytes up to the next special one, a word
		// at a time: the word is stored whole (n+8 <= i+8 <= len(decoded)),
		// and what follows the special byte is overwritten later.
		for i+8 <= len(body) {
			w := binary.LittleEndian.Uint64(body[i:])
			binary.LittleEndian.PutUint64(decoded[n:], w)
			if mask := specialMask(w); mask != 0 {
				k := bits.TrailingZeros64(mask) / 8
				i, n = i+k, n+k
				goto special
			}
			i, n = i+8, n+8
		}
		for ; i < len(body); i, n = i+1, n+1 {
			if c := body[i]; c == '&' || c == '=' || c == '%' || c == '+' {
				goto special
			}
			decoded[n] = body[i]
		}
		// The end of the body ends the last pair.
		if i > pairStart {
			if keyEnd < 0 {
				keyEnd = n
			}
			if keyEnd == keyStart {
				return nil, facts, pairError(body[pairStart:i])
			}
			spans = append(spans, span{prefix: keyPrefix(decoded[keyStart:keyEnd]), keyStart: keyStart, keyEnd: keyEnd, valueEnd: n})
		}
		break
	special:
		switch body[i] {
		case '&':
			// An empty pair ("a=1&&b=2", a trailing "&") carries nothing.
			if i > pairStart {
				if keyEnd < 0 {
					keyEnd = n // "a": a key without a value
				}
				if keyEnd == keyStart {
					return nil, facts, pairError(body[pairStart:i])
				}
				spans = append(spans, span{prefix: keyPrefix(decoded[keyStart:keyEnd]), keyStart: keyStart, keyEnd: keyEnd, valueEnd: n})
			}
			i++
			pairStart, keyStart, keyEnd = i, n, -1
		case '=':
			if keyEnd < 0 {
				keyEnd = n
			} else {
				decoded[n] = '=' // only the first '=' ends the key
				n++
			}
			i++
		case '+':
			decoded[n] = ' '
			n, i = n+1, i+1
		default: // '%'
			if i+2 >= len(body) || !ascii.IsHex(body[i+1]) || !ascii.IsHex(body[i+2]) {
				pairEnd := bytes.IndexByte(body[i:], '&')
				if pairEnd < 0 {
					pairEnd = len(body) - i
				}
				return nil, facts, pairError(body[pairStart : i+pairEnd])
			}
			c := ascii.Unhex(body[i+1])<<4 | ascii.Unhex(body[i+2])
			if c == '&' && keyEnd >= 0 {
				facts.ampersand = true
			}
			decoded[n] = c
			n, i = n+1, i+3
		}
	}
	if len(spans) == 0 {
		return nil, facts, ErrEmptyBody
	}

	// The keys and values tile decoded[:n]: each one is valid UTF-8 if and
	// only if the whole is and each one starts at a rune boundary.
	text := decoded[:n]
	facts.validUTF8 = utf8.Valid(text)
	for _, s := range spans {
		if !facts.validUTF8 {
			break
		}
		facts.validUTF8 = (s.keyStart == n || utf8.RuneStart(text[s.keyStart])) && (s.keyEnd == n || utf8.RuneStart(text[s.keyEnd]))
	}

	all := unsafe.String(unsafe.SliceData(decoded), n) // decoded is never written again
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
			return nil, formFacts{}, refuse(ErrParameterName, fmt.Sprintf("parameter name %q is not ASCII letters, digits and _ (a name holding '=' or '&' would change how the signed string splits)", Truncate(f.Key)))
		}
		if i > 0 && f.Key == fields[i-1].Key {
			return nil, formFacts{}, refuse(ErrDuplicateParameter, fmt.Sprintf("parameter %q appears more than once", Truncate(f.Key)))
		}
	}
	return fields, facts, nil
}

// specialMask has the high bit of the byte set for the first byte of w
// (little-endian) that is '&', '=', '%' or '+', and is zero when none is:
// the classic "word has a zero byte" test on w XOR each of them. Bits above
// the lowest may be false positives.
func specialMask(w uint64) uint64 {
	const (
		ones    = 0x0101010101010101
		highs   = 0x8080808080808080
		amp     = '&' * ones
		equals  = '=' * ones
		percent = '%' * ones
		plus    = '+' * ones
	)
	a, b, c, d := w^amp, w^equals, w^percent, w^plus
	return ((a-ones)&^a | (b-ones)&^b | (c-ones)&^c | (d-ones)&^d) & highs
}

// isParameterName reports whether name is ASCII letters, digits and '_', the
// alphabet of every name Alipay sends. Any other byte, '=' and '&' above all,
// would let one signed string k=v&k=v... be read as different parameters.
func isParameterName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i]) {
			return false
		}
	}
	return true
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// pairError is why one pair of a form cannot be decoded, worded as before
// the one-pass decoder: a malformed escape in the name, an empty name, or a
// malformed escape in the value, checked in that order.
func pairError(pair []byte) error {
	rawKey, rawValue := cutByte(pair, '=')
	scratch := make([]byte, len(pair))
	keyEnd, err := unescapeInto(scratch, 0, rawKey)
	if err != nil {
		return refuse(ErrEncoding, fmt.Sprintf("parameter name %q: %v", Truncate(string(rawKey)), err))
	}
	if keyEnd == 0 {
		return refuse(ErrEncoding, "a parameter has an empty name")
	}
	if _, err := unescapeInto(scratch, keyEnd, rawValue); err != nil {
		return refuse(ErrEncoding, fmt.Sprintf("parameter %q: %v", Truncate(string(scratch[:keyEnd])), err))
	}
	return refuse(ErrEncoding, "malformed parameter") // unreachable: decodeForm saw an error
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

// compareSpans orders spans by their keys' bytes.
func compareSpans(a, b span, decoded []byte) int {
	if a.prefix != b.prefix {
		return cmp.Compare(a.prefix, b.prefix)
	}
	return bytes.Compare(decoded[a.keyStart:a.keyEnd], decoded[b.keyStart:b.keyEnd])
}

// get returns the value of key, or "" when the form does not carry it.
func (f form) get(key string) string {
	i, found := slices.BinarySearchFunc(f, key, func(p Param, k string) int { return strings.Compare(p.Key, k) })
	if !found {
		return ""
	}
	return f[i].Value
}

// cutByte splits s around the first sep; after is nil when sep is absent.
func cutByte(s []byte, sep byte) (before, after []byte) {
	if i := bytes.IndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, nil
}

// unescapeInto percent-decodes src into dst at offset n ('+' is a space,
// %XX is one byte, '=' is itself) and returns the new offset; pairError
// uses it to word the error of a pair that decodeForm could not decode. A
// malformed escape is an error rather than passed through: Alipay always
// encodes correctly, so a broken escape means the body was damaged or
// hand-made.
func unescapeInto(dst []byte, n int, src []byte) (int, error) {
	for len(src) > 0 {
		switch src[0] {
		case '+':
			dst[n] = ' '
			src = src[1:]
		case '%':
			if len(src) < 3 || !ascii.IsHex(src[1]) || !ascii.IsHex(src[2]) {
				return n, fmt.Errorf("malformed percent-escape %q", Truncate(string(src[:min(3, len(src))])))
			}
			dst[n] = ascii.Unhex(src[1])<<4 | ascii.Unhex(src[2])
			src = src[3:]
		default:
			i := 1 + indexSpecial(src[1:])
			n += copy(dst[n:], src[:i])
			src = src[i:]
			continue
		}
		n++
	}
	return n, nil
}

// indexSpecial returns the index of the first '=', '%' or '+' in s, or
// len(s). It looks at eight bytes at a time (the classic "word has a zero
// byte" test on s XOR each of them): a base64 sign and most values are long
// runs without escapes.
func indexSpecial(s []byte) int {
	const (
		ones    = 0x0101010101010101
		highs   = 0x8080808080808080
		equals  = '=' * ones
		percent = '%' * ones
		plus    = '+' * ones
	)
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := binary.LittleEndian.Uint64(s[i:])
		a, b, c := w^equals, w^percent, w^plus
		// The lowest set bit of the mask is exact, which is all we need
		// (higher ones can be false positives).
		if mask := ((a-ones)&^a | (b-ones)&^b | (c-ones)&^c) & highs; mask != 0 {
			return i + bits.TrailingZeros64(mask)/8
		}
	}
	for ; i < len(s); i++ {
		switch s[i] {
		case '=', '%', '+':
			return i
		}
	}
	return len(s)
}

// MaxLoggedBytes bounds every value taken from a request that goes into a
// log line or an error message at INFO and WARN (DESIGN.md §7), so that a
// hostile body cannot write 60 KB log lines.
const MaxLoggedBytes = 128

// Truncate keeps log lines and error messages short when a hostile body
// carries huge names or values: at most MaxLoggedBytes, cut at a UTF-8
// boundary, with "…" when something was cut.
func Truncate(s string) string {
	if len(s) <= MaxLoggedBytes {
		return s
	}
	cut := MaxLoggedBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
