// Package diagnose checks a captured Alipay notification exactly as the
// alipay_notify handler does and, when it does not verify, finds the likely
// cause by verifying repaired copies of it: another hash, HTML-unescaped
// values, '+' restored, the other charset, parameters left out, and
// recognises the merchant's own app key given instead of Alipay's. It works
// over the alipay package's exported API only.
//
// CheckAntom and DiagnoseAntom do the same for Antom notifications, over the
// antom package's exported API: another URI (the query left out, a path
// prefix), the body compacted or its extra escapes undone, a '+' restored in
// the Signature, another client ID; the merchant's own key; a body
// re-serialised beyond repair.
package diagnose

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
)

// Verdict is the verdict on a capture, as the handler would reach it.
type Verdict struct {
	// Params are the parameters as parsed (bytes as sent, blank values
	// included), sorted by key; nil when the body cannot be parsed at all.
	Params []alipay.Param
	// Notification is the parsed notification; nil when it is malformed.
	Notification *alipay.Notification
	// Err is the handler's refusal, nil when the notification verifies. It
	// matches alipay.ErrMalformed (the handler answers 400) or
	// alipay.ErrNotVerified (403).
	Err error
	// Match is what verified it, when it did.
	Match alipay.Match
	// MD5 is true when the partner's MD5 key checked the signature
	// (sign_type MD5 and an MD5 key given).
	MD5 bool
	// SignedString is the signed string that verified; otherwise the V1
	// string that was checked, blank values left out as Alipay leaves them
	// out (nil when the body cannot be parsed, or holds only blank values).
	SignedString []byte
}

// Verified reports whether the capture verifies as it is.
func (v *Verdict) Verified() bool { return v.Err == nil }

// Malformed reports whether the handler refuses it as malformed (400)
// rather than as not verified (403).
func (v *Verdict) Malformed() bool { return errors.Is(v.Err, alipay.ErrMalformed) }

// Check verifies body exactly as the handler does: a legacy MD5 signature
// (sign_type MD5) with md5 when one is given, any other with ring (nil: no
// key).
func Check(ring *alipay.KeyRing, md5 alipay.MD5Key, body []byte) *Verdict {
	if ring == nil {
		ring = new(alipay.KeyRing)
	}
	v := &Verdict{}
	params, err := alipay.ParseForm(body)
	if err != nil {
		v.Err = fmt.Errorf("malformed notification: %w", err)
		return v
	}
	v.Params = params
	n, err := alipay.ParseNotification(body)
	if err != nil {
		v.Err = fmt.Errorf("malformed notification: %w", err)
		if hint := gbkWithoutCharset(ring, md5, params, body, err); hint != "" {
			v.Err = fmt.Errorf("%w; %s", v.Err, hint)
		}
		v.SignedString = alipay.SignedString(params, alipay.RuleV1)
		return v
	}
	v.Notification = n
	v.MD5, v.Match, v.Err = verifyParsed(ring, md5, n)
	if v.Err != nil {
		v.SignedString = n.SignedString(alipay.RuleV1)
		return v
	}
	v.SignedString = n.SignedString(v.Match.Rule)
	return v
}

// verifyParsed checks n's signature: a legacy MD5 one with md5 when given,
// any other with ring.
func verifyParsed(ring *alipay.KeyRing, md5 alipay.MD5Key, n *alipay.Notification) (isMD5 bool, m alipay.Match, err error) {
	if n.SignType() == "MD5" && md5 != nil {
		m, err = md5.Verify(n)
		return true, m, err
	}
	m, err = ring.Verify(n)
	return false, m, err
}

// gbkWithoutCharset explains a body that names no charset and is not UTF-8
// but verifies when read as GBK: a legacy mapi notification in GBK, which
// the handler reads with default_charset gbk. "" otherwise.
func gbkWithoutCharset(ring *alipay.KeyRing, md5 alipay.MD5Key, params []alipay.Param, body []byte, err error) string {
	if !errors.Is(err, alipay.ErrCharset) || Has(params, "charset") {
		return ""
	}
	n, err := alipay.Parser{DefaultCharset: "gbk"}.Parse(body)
	if err != nil {
		return ""
	}
	if _, m, err := verifyParsed(ring, md5, n); err == nil {
		return fmt.Sprintf("read as GBK, it verifies with %s: a legacy notification in GBK, which the plugin reads with default_charset gbk", m.Key)
	}
	return ""
}

// Get returns the value of key in params (sorted by key, as
// alipay.ParseForm returns them), "" when absent.
func Get(params []alipay.Param, key string) string {
	if i, ok := find(params, key); ok {
		return params[i].Value
	}
	return ""
}

// Has reports whether params carry key, even with an empty value.
func Has(params []alipay.Param, key string) bool {
	_, ok := find(params, key)
	return ok
}

func find(params []alipay.Param, key string) (int, bool) {
	return slices.BinarySearchFunc(params, key, func(p alipay.Param, k string) int { return strings.Compare(p.Key, k) })
}

// IsGBK reports whether params declare a GBK charset: their values are GBK
// bytes.
func IsGBK(params []alipay.Param) bool { return alipay.IsGBK(Get(params, "charset")) }

// Hash names the digest of a sign_type that a KeyRing verifies: SHA256 for
// RSA2, SHA1 for RSA, SM3 for SM2; "" for any other.
func Hash(signType string) string {
	switch signType {
	case "RSA2":
		return "SHA256"
	case "RSA":
		return "SHA1"
	case "SM2":
		return "SM3"
	}
	return ""
}

// Algorithm names the algorithm of a sign_type in Java's terms:
// SHA256withRSA, SHA1withRSA, SM3withSM2; "" for any other.
func Algorithm(signType string) string {
	if signType == "SM2" {
		return "SM3withSM2"
	}
	if h := Hash(signType); h != "" {
		return h + "withRSA"
	}
	return ""
}
