package alipaynotify

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

// This file signs notifications the way Alipay does, for the command line
// tools (sign, send) that let a developer exercise the plugin and an
// upstream with a test key. It builds the signed string on its own rather
// than through verify.go, and the package's verification tests use yet
// another, independent signer (helpers_test.go), so that a mistake here can
// neither hide nor be hidden by one in the verifier.

// alipayNotification is a notification to sign: its parameters as UTF-8
// text, and how Alipay would sign and send it.
type alipayNotification struct {
	params   []field // UTF-8 text; no sign
	signType string  // RSA2 or RSA
	charset  string  // utf-8 or gbk: the bytes that are signed and sent
	v2       bool    // sign_type is part of the signed string
}

// signedNotification is a signed notification in the bytes Alipay sends.
type signedNotification struct {
	raw     []field // sorted by key, in the charset's bytes, sign last
	content []byte  // the signed string
	sign    string
}

// sign signs n with key: parameters sorted by key, sign left out, sign_type
// left out unless V2, blank values left out, joined as k=v with '&', over
// the bytes of the charset; SHA256withRSA for RSA2, SHA1withRSA for RSA;
// sign is standard base64.
func (n alipayNotification) sign(key *rsa.PrivateKey) (*signedNotification, error) {
	hash, err := signHash(n.signType)
	if err != nil {
		return nil, err
	}
	raw, err := encodeParams(n.params, n.charset)
	if err != nil {
		return nil, err
	}
	// Blankness is judged on the text, as the verifier does; the signed
	// bytes are those of the charset.
	type entry struct {
		field
		blank bool
	}
	entries := make([]entry, len(raw))
	for i, f := range raw {
		entries[i] = entry{field: f, blank: isJavaBlank(n.params[i].value)}
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	raw = raw[:0]
	var content []byte
	for _, e := range entries {
		raw = append(raw, e.field)
		if e.key == "sign" || (e.key == "sign_type" && !n.v2) || e.blank {
			continue
		}
		if len(content) > 0 {
			content = append(content, '&')
		}
		content = append(content, e.key...)
		content = append(content, '=')
		content = append(content, e.value...)
	}
	h := hash.New()
	h.Write(content)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, hash, h.Sum(nil))
	if err != nil {
		return nil, err
	}
	sign := base64.StdEncoding.EncodeToString(sig)
	raw = append(raw, field{key: "sign", value: sign})
	return &signedNotification{raw: raw, content: content, sign: sign}, nil
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
func encodeParams(params []field, charset string) ([]field, error) {
	out := make([]field, len(params))
	switch strings.ToLower(charset) {
	case "utf-8", "utf8":
		copy(out, params)
	case "gbk":
		enc := simplifiedchinese.GBK.NewEncoder()
		for i, p := range params {
			value, err := enc.String(p.value)
			if err != nil {
				return nil, fmt.Errorf("parameter %s: %q cannot be written in GBK", p.key, truncate([]byte(p.value)))
			}
			out[i] = field{key: p.key, value: value}
		}
	default:
		return nil, fmt.Errorf("charset %q: want utf-8 or gbk", charset)
	}
	return out, nil
}

// body encodes the notification as Alipay posts it:
// application/x-www-form-urlencoded, '+' for a space, %XX for every byte
// other than letters, digits and -_.~ (the value bytes are in the charset).
func (s *signedNotification) body() string {
	var b strings.Builder
	for i, f := range s.raw {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(f.key))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(f.value))
	}
	return b.String()
}

// loadPrivateKey reads the private key that signs test notifications: a
// PEM file (PKCS#8 "PRIVATE KEY" as keygen writes it, or PKCS#1 "RSA PRIVATE
// KEY"), or one line of base64 of either, the way Alipay's key tool writes
// an app private key.
func loadPrivateKey(path string) (*rsa.PrivateKey, error) {
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
