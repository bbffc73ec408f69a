package antom

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/ascii"
)

// AlgorithmRSA256 is the only signature algorithm Antom uses:
// SHA256withRSA, PKCS #1 v1.5.
const AlgorithmRSA256 = "RSA256"

// SignatureHeader is a parsed Signature header.
type SignatureHeader struct {
	// Algorithm is always AlgorithmRSA256 in a header that parsed.
	Algorithm string

	// KeyVersion is the keyVersion field, 1 when absent. It is informative
	// only: a KeyRing tries all its keys whatever the version (the header
	// is not signed, so the version could not be trusted to pick one).
	KeyVersion int

	// Signature is the signature field as carried: percent-encoded
	// standard base64. DecodeSignature turns it into bytes.
	Signature string
}

// ParseSignatureHeader parses a Signature header value such as
//
//	algorithm=RSA256,keyVersion=1,signature=f%2FdWS%2B9...%3D%3D
//
// The value is a list of name=value fields separated by commas, in any
// order, each optionally surrounded by spaces or tabs (Antom's documentation
// shows a space after each comma; its SDKs send none). Names are compared
// without regard to ASCII case, as HTTP auth-param names are; a name given
// twice is refused, since which one counts would be a guess. Unknown fields
// are ignored, so that Antom may add one.
//
// A value runs from the first '=' after its name to the next comma. Antom's
// SDKs instead take everything after "signature=" as the signature; the two
// rules agree on every header whose signature could verify, because neither
// base64 nor its percent-encoding contains a comma, and the comma rule is
// what lets the fields come in any order. A raw '=' (unencoded base64
// padding) stays in the value.
//
// The algorithm field is required and must be RSA256 (otherwise
// ErrUnsupportedAlgorithm); keyVersion, when present, is 1 to 9 decimal
// digits; signature is required and non-empty. Errors wrap
// ErrMalformedSignatureHeader, ErrUnsupportedAlgorithm or, for an empty
// value, ErrMissingHeader.
func ParseSignatureHeader(value string) (SignatureHeader, error) {
	var h SignatureHeader
	if strings.Trim(value, " \t") == "" {
		return h, &MissingHeaderError{Name: "Signature"}
	}
	var haveAlgorithm, haveKeyVersion, haveSignature bool
	rest := value
	for {
		field, after, more := strings.Cut(rest, ",")
		rest = after
		field = strings.Trim(field, " \t")
		name, val, ok := strings.Cut(field, "=")
		if !ok || !isFieldName(name) {
			return SignatureHeader{}, fmt.Errorf("%w: field %q is not name=value", ErrMalformedSignatureHeader, clip(field))
		}
		var seen *bool
		switch {
		case strings.EqualFold(name, "algorithm"):
			seen = &haveAlgorithm
			h.Algorithm = val
		case strings.EqualFold(name, "keyVersion"):
			seen = &haveKeyVersion
			n, ok := parseKeyVersion(val)
			if !ok {
				return SignatureHeader{}, fmt.Errorf("%w: keyVersion %q is not a number", ErrMalformedSignatureHeader, clip(val))
			}
			h.KeyVersion = n
		case strings.EqualFold(name, "signature"):
			seen = &haveSignature
			h.Signature = val
		}
		if seen != nil {
			if *seen {
				return SignatureHeader{}, fmt.Errorf("%w: field %s given twice", ErrMalformedSignatureHeader, name)
			}
			*seen = true
		}
		if !more {
			break
		}
	}
	switch {
	case !haveAlgorithm:
		return SignatureHeader{}, fmt.Errorf("%w: no algorithm", ErrMalformedSignatureHeader)
	case h.Algorithm != AlgorithmRSA256:
		return SignatureHeader{}, fmt.Errorf("%w: %q (only %s)", ErrUnsupportedAlgorithm, clip(h.Algorithm), AlgorithmRSA256)
	case !haveSignature || h.Signature == "":
		return SignatureHeader{}, fmt.Errorf("%w: no signature", ErrMalformedSignatureHeader)
	}
	if !haveKeyVersion {
		h.KeyVersion = 1
	}
	return h, nil
}

// String formats the header as Antom's SDKs do:
// algorithm=<a>,keyVersion=<n>,signature=<s>, no spaces. A header that
// ParseSignatureHeader returned parses back to itself.
func (h SignatureHeader) String() string {
	return "algorithm=" + h.Algorithm + ",keyVersion=" + strconv.Itoa(h.KeyVersion) + ",signature=" + h.Signature
}

// isFieldName reports whether s is a plausible field name: one or more
// ASCII letters, digits, '_' or '-'. It refuses "keyVersion " (a space
// before '='), which would otherwise be an unknown field silently ignored.
func isFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// parseKeyVersion reads 1 to 9 decimal digits: no sign, no spaces, and
// small enough that no int overflows.
func parseKeyVersion(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// clip shortens an attacker-supplied value quoted in an error message, so
// that error strings (which end up in logs) stay bounded.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// DecodeSignature turns the signature field of a Signature header into the
// signature's bytes: percent-decoding, then standard base64.
//
// Percent-decoding does not turn '+' into a space (as form decoding, which
// Antom's Java, Go and Python SDKs use, does): a raw '+' is a base64 '+',
// and so is "%2B". The decoded text must be canonical standard base64: only
// the base64 alphabet, '=' padding present and exact, zero padding bits.
// Anything else (white space, line breaks, a space where a '+' was,
// double encoding) is refused with ErrBadSignatureEncoding rather than
// repaired, so that one signature has one spelling.
func DecodeSignature(s string) ([]byte, error) {
	return appendDecodeSignature(nil, s)
}

// appendDecodeSignature is DecodeSignature appending to dst, so that Verify
// can decode into a buffer on its stack.
func appendDecodeSignature(dst []byte, s string) ([]byte, error) {
	// Percent-decode into a small buffer first: a 4096-bit signature is 684
	// base64 characters, and longer input is decoded on the heap.
	var textBuf [768]byte
	text := textBuf[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) || !ascii.IsHex(s[i+1]) || !ascii.IsHex(s[i+2]) {
				return nil, fmt.Errorf("%w: bad percent escape at byte %d", ErrBadSignatureEncoding, i)
			}
			c = ascii.Unhex(s[i+1])<<4 | ascii.Unhex(s[i+2])
			i += 2
		}
		if !ascii.IsBase64(c) {
			return nil, badSignatureChar(c)
		}
		text = append(text, c)
	}
	if len(text) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadSignatureEncoding)
	}
	// Strict: refuse nonzero padding bits. The alphabet check above already
	// removed '\r' and '\n', which even Strict decoding would skip.
	out, err := base64.StdEncoding.Strict().AppendDecode(dst, text)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignatureEncoding, err)
	}
	return out, nil
}

func badSignatureChar(c byte) error {
	if c == ' ' {
		// The classic: something form-decoded the header and turned every
		// '+' into a space.
		return fmt.Errorf("%w: it contains a space (a '+' decoded as a space?)", ErrBadSignatureEncoding)
	}
	return fmt.Errorf("%w: character %q", ErrBadSignatureEncoding, c)
}

// EncodeSignature is the inverse of DecodeSignature, spelt as Antom's SDKs
// spell it: standard base64 with '+', '/' and '=' percent-encoded (the
// output of Java's URLEncoder on base64).
func EncodeSignature(sig []byte) string {
	b64 := base64.StdEncoding.EncodeToString(sig)
	var b strings.Builder
	b.Grow(len(b64) + len(b64)/4)
	for i := 0; i < len(b64); i++ {
		switch c := b64[i]; c {
		case '+':
			b.WriteString("%2B")
		case '/':
			b.WriteString("%2F")
		case '=':
			b.WriteString("%3D")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
