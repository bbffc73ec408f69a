package alipay

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// MD5Key is a partner's MD5 key (安全校验码), which signs legacy mapi
// notifications (sign_type MD5): sign = md5_hex(V1 signed string + key).
type MD5Key []byte

// md5Label names the MD5 key in Match.
const md5Label = "md5_key"

// Verify checks a legacy notification's MD5 signature, then that its
// signed string has one reading, like KeyRing.Verify. The comparison takes
// constant time, so that the answer's timing tells a forger nothing.
func (key MD5Key) Verify(n *Notification) (Match, error) {
	sign := n.raw.get("sign")
	if sign == "" {
		return Match{}, refuse(ErrNoSign, "no sign parameter")
	}
	h := md5.New()
	h.Write(n.SignedString(RuleV1))
	h.Write(key)
	want := hex.EncodeToString(h.Sum(nil))
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(sign))) != 1 {
		return Match{}, refuse(ErrSignatureMismatch, "MD5 signature does not verify with md5_key")
	}
	return n.unambiguous(Match{Rule: RuleV1, Key: md5Label})
}

// SignMD5 signs a legacy notification's signed string the mapi way, for
// tests and tools.
func (key MD5Key) SignMD5(signedString []byte) string {
	sum := md5.Sum(append(append([]byte(nil), signedString...), key...))
	return hex.EncodeToString(sum[:])
}
