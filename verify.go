package alipaynotify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emmansun/gmsm/sm2"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Content rules: which parameters Alipay's signed string covers. Ordinary
// notifications leave sign_type out (V1); messages pushed to an app gateway
// keep it (V2). Like Alipay's Node SDK, V1 is tried first, then V2.
const (
	ruleV1 = "v1"
	ruleV2 = "v2"
)

// notification is a parsed Alipay notification.
type notification struct {
	// raw holds the fields as Alipay signed them (bytes in the body's charset).
	raw form
	// text holds the same fields, index for index, converted to UTF-8; for a
	// UTF-8 body it is raw itself.
	text form
}

// newNotification parses body and converts it to text. Every error is a
// malformed request.
func newNotification(body []byte) (*notification, error) {
	n := new(notification)
	if err := n.parse(body); err != nil {
		return nil, err
	}
	return n, nil
}

// parse fills n from body; newNotification without the allocation of n, for
// callers that keep the notification on their stack (Keys.Verify).
func (n *notification) parse(body []byte) error {
	raw, validUTF8, err := decodeForm(body)
	if err != nil {
		return err
	}
	text, err := decodeCharset(raw, validUTF8)
	if err != nil {
		return err
	}
	n.raw, n.text = dropBlanks(raw, text)
	return nil
}

// dropBlanks removes the parameters whose value is blank, from raw and text
// alike (they are index for index; text may be raw itself). Alipay's SDKs
// leave blank values out of the signed string, so nothing vouches for them:
// a blank parameter does not exist for the webhook, the policy, headers,
// placeholders or logs (DESIGN.md §7). Blankness is judged on the text, as
// Java judges the decoded String.
func dropBlanks(raw, text form) (form, form) {
	same := len(raw) > 0 && &raw[0] == &text[0]
	kept := 0
	for i := range raw {
		if isJavaBlank(text[i].value) {
			continue
		}
		raw[kept] = raw[i]
		if !same {
			text[kept] = text[i]
		}
		kept++
	}
	if same {
		return raw[:kept], raw[:kept]
	}
	return raw[:kept], text[:kept]
}

// get returns a field as UTF-8 text, "" when absent or when n is nil (a
// request refused before its body was parsed).
func (n *notification) get(key string) string {
	if n == nil {
		return ""
	}
	return n.text.get(key)
}

// signed reports whether field i is covered by the signature: every field
// but sign (blank values were dropped when parsing, and every other value is
// signed untrimmed). sign_type is signed only under V2 (see includes).
func (n *notification) signed(i int) bool {
	return n.raw[i].key != "sign"
}

// decodeCharset converts the fields to UTF-8 according to the body's charset
// parameter. A value that is not valid in its charset makes the notification
// malformed: it can be neither shown nor forwarded faithfully. validUTF8 says
// whether every key and value is valid UTF-8 (decodeForm knows).
func decodeCharset(raw form, validUTF8 bool) (form, error) {
	switch cs := strings.ToLower(raw.get("charset")); cs {
	case "", "utf-8", "utf8":
		if validUTF8 {
			return raw, nil
		}
		for _, f := range raw {
			if !utf8.ValidString(f.key) || !utf8.ValidString(f.value) {
				return nil, fmt.Errorf("parameter %q is not valid UTF-8 (charset %q)", truncate([]byte(f.key)), cs)
			}
		}
		return raw, nil
	case "gbk", "gb2312", "gb18030":
		return decodeGBK(raw)
	default:
		return nil, fmt.Errorf("unsupported charset %q (Alipay sends utf-8 or gbk)", truncate([]byte(cs)))
	}
}

// decodeGBK converts every key and value from GBK (GB2312 is a subset, and
// GB18030 a superset that the decoder also reads) to UTF-8.
func decodeGBK(raw form) (form, error) {
	dec := simplifiedchinese.GB18030.NewDecoder()
	text := make(form, len(raw))
	for i, f := range raw {
		key, err := gbkToUTF8(dec, f.key)
		if err != nil {
			return nil, fmt.Errorf("parameter name %q: %w", truncate([]byte(f.key)), err)
		}
		value, err := gbkToUTF8(dec, f.value)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: %w", key, err)
		}
		text[i] = field{key: key, value: value}
	}
	return text, nil
}

func gbkToUTF8(dec interface{ String(string) (string, error) }, s string) (string, error) {
	if isASCII(s) {
		return s, nil
	}
	out, err := dec.String(s)
	// The decoder replaces invalid sequences with U+FFFD instead of failing;
	// a GBK body cannot contain U+FFFD itself, so its presence means garbage.
	if err != nil || strings.ContainsRune(out, utf8.RuneError) {
		return "", errors.New("not valid GBK")
	}
	return out, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// isJavaBlank reports whether s is empty or only whitespace as Java's
// Character.isWhitespace sees it, the test Alipay's Java SDK applies (through
// StringUtils.isEmpty) before putting a value into the signed string.
func isJavaBlank(s string) bool {
	for _, r := range s {
		if !isJavaWhitespace(r) {
			return false
		}
	}
	return true
}

func isJavaWhitespace(r rune) bool {
	if r < utf8.RuneSelf { // the common case, without unicode's table lookups
		return r == ' ' || '\t' <= r && r <= '\r' || 0x1c <= r && r <= 0x1f
	}
	switch r {
	case '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f:
		return true
	case 0xa0, 0x2007, 0x202f: // Java excludes the non-breaking spaces
		return false
	}
	return unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp)
}

// signedContent returns the string Alipay signed under rule: the signed
// fields as key=value joined with '&' in key byte order, unescaped, in the
// body's own charset; sign_type only under V2.
func (n *notification) signedContent(rule string) []byte {
	return n.appendSignedContent(nil, rule)
}

// appendSignedContent appends signedContent(rule) to content, so that the
// verifier can build it in a buffer on its stack.
func (n *notification) appendSignedContent(content []byte, rule string) []byte {
	size := 0 // an upper bound, cheaper than asking includes twice
	for _, f := range n.raw {
		size += len(f.key) + 1 + len(f.value) + 1
	}
	content = slices.Grow(content[:0], size)
	for i, f := range n.raw {
		if !n.includes(i, rule) {
			continue
		}
		if len(content) > 0 {
			content = append(content, '&')
		}
		content = append(content, f.key...)
		content = append(content, '=')
		content = append(content, f.value...)
	}
	return content
}

func (n *notification) includes(i int, rule string) bool {
	return n.signed(i) && (rule == ruleV2 || n.raw[i].key != "sign_type")
}

// signatureAlgorithm is what a notification's sign_type names.
type signatureAlgorithm struct {
	name string
	hash crypto.Hash // RSA's digest; 0 for SM2, which hashes with the key
}

// algorithmFor maps sign_type to its algorithm. The hash must come from
// sign_type: SDKs that hard-code SHA-256 fail on apps that still sign with
// RSA. MD5 (legacy mapi notifications) is checked with the merchant's MD5
// key instead, by the caller.
func algorithmFor(signType string) (signatureAlgorithm, error) {
	switch signType {
	case "RSA2":
		return signatureAlgorithm{name: signType, hash: crypto.SHA256}, nil
	case "RSA":
		return signatureAlgorithm{name: signType, hash: crypto.SHA1}, nil
	case "SM2":
		return signatureAlgorithm{name: signType}, nil
	case "":
		return signatureAlgorithm{}, errors.New("no sign_type")
	default:
		return signatureAlgorithm{}, fmt.Errorf("unsupported sign_type %q (supported: RSA2, RSA, SM2, and MD5 with partner and md5_key)", truncate([]byte(signType)))
	}
}

// digest hashes content for RSA into sum, which the caller keeps on its
// stack, and returns the digest's bytes; nil for SM2, which hashes with the
// key.
func (a signatureAlgorithm) digest(sum *[sha256.Size]byte, content []byte) []byte {
	switch a.hash {
	case crypto.SHA1:
		*(*[sha1.Size]byte)(sum[:sha1.Size]) = sha1.Sum(content)
		return sum[:sha1.Size]
	case crypto.SHA256:
		*sum = sha256.Sum256(content)
		return sum[:]
	}
	return nil
}

// check reports whether sig is key's signature of content. An RSA key only
// checks RSA and RSA2, an SM2 key only SM2 (SM3withSM2 with the default user
// ID 1234567812345678, as Alipay's Java SDK signs).
func (a signatureAlgorithm) check(key crypto.PublicKey, content, digest, sig []byte) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return a.hash != 0 && rsa.VerifyPKCS1v15(k, a.hash, digest, sig) == nil
	case *ecdsa.PublicKey:
		// A copy: gmsm's escape analysis lets sig escape, which would move
		// verify's stack buffer for it to the heap for every RSA
		// notification too.
		return a.hash == 0 && sm2.VerifyASN1WithSM2(k, nil, content, bytes.Clone(sig))
	}
	return false
}

// publicKey is one key that may have signed a notification.
type publicKey struct {
	// label names the key in logs without revealing it, e.g.
	// "alipay_public_key #2" or "alipay_cert #1 (SN ...)".
	label string
	key   crypto.PublicKey // *rsa.PublicKey, or *ecdsa.PublicKey on the SM2 curve
}

// keyRing holds the keys tried in order (rotation: old and new both valid).
type keyRing []publicKey

// match is what a successful verification found.
type match struct {
	rule string
	key  string
}

// verifyError is a refused verification: status 400 for a malformed
// signature, 403 for one that does not verify.
type verifyError struct {
	status int
	reason string
	// content is the V1 string that was checked, for a DEBUG log line.
	content []byte
}

func (e *verifyError) Error() string { return e.reason }

func malformedSignature(reason string) *verifyError {
	return &verifyError{status: http.StatusBadRequest, reason: reason}
}

// Buffers that verify keeps on its stack, so that a verification allocates
// nothing beyond what crypto/rsa does: the signature (RSA-4096 at most) and
// the signed string of a typical notification (1 to 3 KiB; a longer one
// moves to the heap).
const (
	maxSignatureSize    = 512
	signedContentBuffer = 4 << 10
)

// verify checks the notification's RSA or SM2 signature with every key,
// under V1 and then V2, and reports which matched.
func (ring keyRing) verify(n *notification) (match, *verifyError) {
	sign := n.raw.get("sign")
	if sign == "" {
		return match{}, malformedSignature("no sign parameter")
	}
	alg, err := algorithmFor(n.raw.get("sign_type"))
	if err != nil {
		return match{}, malformedSignature(err.Error())
	}
	var sigBuf [maxSignatureSize]byte
	sig, verr := decodeSign(sigBuf[:0], sign)
	if verr != nil {
		return match{}, verr
	}
	var contentBuf [signedContentBuffer]byte
	v1 := n.appendSignedContent(contentBuf[:0], ruleV1)
	if key, ok := ring.find(alg, v1, sig); ok {
		return n.unambiguous(match{rule: ruleV1, key: key})
	}
	if key, ok := ring.find(alg, n.appendSignedContent(contentBuf[:0], ruleV2), sig); ok {
		return n.unambiguous(match{rule: ruleV2, key: key})
	}
	return match{}, &verifyError{
		status:  http.StatusForbidden,
		reason:  "signature does not verify with any configured key",
		content: n.signedContent(ruleV1), // a copy: contentBuf is on the stack
	}
}

// decodeSign decodes sign, which must be canonical standard base64: no line
// breaks or spaces, padding as encoded, zero padding bits. Go's decoder would
// skip line breaks and ignore padding bits, so one signature could be spelled
// many ways, each looking like another notification (DESIGN.md §7).
func decodeSign(dst []byte, sign string) ([]byte, *verifyError) {
	if strings.ContainsAny(sign, "\r\n") {
		return nil, malformedSignature("sign is not canonical base64: it contains a line break")
	}
	sig, err := base64.StdEncoding.Strict().AppendDecode(dst, []byte(sign))
	if err != nil {
		reason := "sign is not canonical base64"
		if strings.ContainsRune(sign, ' ') {
			reason += ` (it contains spaces: a '+' in it was probably decoded twice, e.g. by a proxy that decodes the body)`
		}
		return nil, malformedSignature(reason)
	}
	return sig, nil
}

// unambiguous returns m when the signed string that verified under m.rule
// has no other reading; otherwise the refusal of foldedParameter.
func (n *notification) unambiguous(m match) (match, *verifyError) {
	if reason := n.foldedParameter(m.rule); reason != "" {
		return match{}, malformedSignature(reason)
	}
	return m, nil
}

// find returns the label of the first key whose signature over content is sig.
func (ring keyRing) find(alg signatureAlgorithm, content, sig []byte) (string, bool) {
	var sum [sha256.Size]byte
	digest := alg.digest(&sum, content)
	for _, k := range ring {
		if alg.check(k.key, content, digest, sig) {
			return k.label, true
		}
	}
	return "", false
}

// md5Key verifies legacy mapi notifications: sign = md5_hex(V1 string + key).
type md5Key []byte

func (key md5Key) verify(n *notification) (match, *verifyError) {
	sign := n.raw.get("sign")
	if sign == "" {
		return match{}, malformedSignature("no sign parameter")
	}
	content := n.signedContent(ruleV1)
	h := md5.New()
	h.Write(content)
	h.Write(key)
	want := hex.EncodeToString(h.Sum(nil))
	// Constant time, so that the answer's timing tells a forger nothing.
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(sign))) == 1 {
		return n.unambiguous(match{rule: ruleV1, key: md5KeyLabel})
	}
	return match{}, &verifyError{status: http.StatusForbidden, reason: "MD5 signature does not verify with md5_key", content: content}
}

// Keys verifies Alipay signatures outside Caddy, with exactly the handler's
// rules; for tools, benchmarks and other Go programs.
type Keys struct{ ring keyRing }

// NewKeys parses Alipay public keys in any form alipay_public_key accepts:
// one line of base64, a PEM block, or a file path.
func NewKeys(keys ...string) (*Keys, error) {
	k := new(Keys)
	for i, value := range keys {
		key, err := parsePublicKey(value)
		if err != nil {
			return nil, fmt.Errorf("key #%d: %w", i+1, err)
		}
		k.ring = append(k.ring, publicKey{label: fmt.Sprintf("key #%d", i+1), key: key})
	}
	return k, nil
}

// Verify reports whether body, a notification exactly as Alipay POSTed it,
// is well-formed and signed by one of the keys. It checks only the
// signature, not app_id, seller_id or age.
func (k *Keys) Verify(body []byte) error {
	var n notification
	if err := n.parse(body); err != nil {
		return fmt.Errorf("malformed notification: %w", err)
	}
	if _, verr := k.ring.verify(&n); verr != nil {
		return verr
	}
	return nil
}
