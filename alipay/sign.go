package alipay

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// Signing plays Alipay, for tests and tools (the sign and send commands)
// that exercise an endpoint with a test key. It builds the signed string on
// its own rather than through the verifier's code, so that a mistake in one
// cannot hide one in the other.

// SignOptions say how Alipay would sign and send a notification.
type SignOptions struct {
	// SignType is RSA2 (SHA256withRSA, the default) or RSA (SHA1withRSA).
	SignType string
	// Charset is utf-8 (the default) or gbk: the bytes that are signed and
	// sent. The parameters given to Sign are UTF-8 text either way.
	Charset string
	// V2 keeps sign_type in the signed string, as app-gateway messages do.
	V2 bool
}

// Signed is a signed notification in the bytes Alipay sends.
type Signed struct {
	// Params are sorted by key, in the charset's bytes, sign last.
	Params []Param
	// SignedString is the string that was signed.
	SignedString []byte
	// Sign is the signature, standard base64.
	Sign string
}

// Sign signs params (UTF-8 text, without sign) with key the way Alipay
// does: sorted by key, sign left out, sign_type left out unless V2, blank
// values left out, joined as k=v with '&', over the bytes of the charset;
// SHA256withRSA for RSA2, SHA1withRSA for RSA; sign is standard base64. The
// sign_type parameter is not added: give it in params, as Alipay sends it.
func Sign(key *rsa.PrivateKey, params []Param, opts SignOptions) (*Signed, error) {
	signType := cmpOr(opts.SignType, "RSA2")
	hash, err := signHash(signType)
	if err != nil {
		return nil, err
	}
	raw, err := encodeParams(params, cmpOr(opts.Charset, "utf-8"))
	if err != nil {
		return nil, err
	}
	// Blankness is judged on the text, as the verifier does; the signed
	// bytes are those of the charset.
	type entry struct {
		Param
		blank bool
	}
	entries := make([]entry, len(raw))
	for i, p := range raw {
		entries[i] = entry{Param: p, blank: IsBlank(params[i].Value)}
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return strings.Compare(a.Key, b.Key) })
	raw = raw[:0]
	var content []byte
	for _, e := range entries {
		raw = append(raw, e.Param)
		if e.Key == "sign" || (e.Key == "sign_type" && !opts.V2) || e.blank {
			continue
		}
		if len(content) > 0 {
			content = append(content, '&')
		}
		content = append(content, e.Key...)
		content = append(content, '=')
		content = append(content, e.Value...)
	}
	h := hash.New()
	h.Write(content)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, hash, h.Sum(nil))
	if err != nil {
		return nil, err
	}
	sign := base64.StdEncoding.EncodeToString(sig)
	raw = append(raw, Param{Key: "sign", Value: sign})
	return &Signed{Params: raw, SignedString: content, Sign: sign}, nil
}

func cmpOr(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

func signHash(signType string) (crypto.Hash, error) {
	switch signType {
	case "RSA2":
		return crypto.SHA256, nil
	case "RSA":
		return crypto.SHA1, nil
	default:
		return 0, fmt.Errorf("sign type %q: want RSA2 (SHA256withRSA) or RSA (SHA1withRSA)", signType)
	}
}

// encodeParams converts UTF-8 parameters to the bytes of charset.
func encodeParams(params []Param, charset string) ([]Param, error) {
	out := make([]Param, len(params))
	switch {
	case strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "utf8"):
		copy(out, params)
	case strings.EqualFold(charset, "gbk"):
		enc := simplifiedchinese.GBK.NewEncoder()
		for i, p := range params {
			value, err := enc.String(p.Value)
			if err != nil {
				return nil, fmt.Errorf("parameter %s: %q cannot be written in GBK", p.Key, Truncate(p.Value))
			}
			out[i] = Param{Key: p.Key, Value: value}
		}
	default:
		return nil, fmt.Errorf("charset %q: want utf-8 or gbk", charset)
	}
	return out, nil
}

// Body encodes the notification as Alipay posts it:
// application/x-www-form-urlencoded, '+' for a space, %XX for every byte
// other than letters, digits and -_.~ (the value bytes are in the charset).
func (s *Signed) Body() string {
	var b strings.Builder
	for i, p := range s.Params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(p.Key))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(p.Value))
	}
	return b.String()
}

// LoadPrivateKey reads the RSA private key that signs test notifications: a
// PEM file (PKCS#8 "PRIVATE KEY" as the keygen command writes it, or PKCS#1
// "RSA PRIVATE KEY"), or one line of base64 of either, the way Alipay's key
// tool writes an app private key.
func LoadPrivateKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(string(data))
	var der []byte
	if strings.HasPrefix(text, "-----BEGIN") {
		block, _ := pem.Decode([]byte(text))
		if block == nil {
			return nil, fmt.Errorf("%s: malformed PEM block", path)
		}
		if strings.Contains(block.Type, "PUBLIC KEY") || block.Type == "CERTIFICATE" {
			return nil, fmt.Errorf("%s holds a %s; signing needs the private key (keygen writes it as *.key.pem)", path, strings.ToLower(block.Type))
		}
		der = block.Bytes
	} else if der, err = decodeBase64Loose(text); err != nil {
		return nil, fmt.Errorf("%s holds neither a PEM block nor one line of base64", path)
	}
	if key, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		rsaKey, ok := key.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s holds a %T; Alipay signs with RSA keys", path, key)
		}
		return rsaKey, nil
	}
	if key, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return key, nil
	}
	if _, err := x509.ParsePKIXPublicKey(der); err == nil {
		return nil, fmt.Errorf("%s holds a public key; signing needs the private key (keygen writes it as *.key.pem)", path)
	}
	return nil, errors.New(path + ": not an RSA private key (PKCS#8 or PKCS#1)")
}
