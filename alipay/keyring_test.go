package alipay

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// referenceVerify is KeyRing.Verify's RSA verdict as it was before the
// precomputed keys: crypto/rsa's VerifyPKCS1v15, the V1 signed string with
// every key in order, then the V2 string with every key.
func referenceVerify(t *testing.T, keys []*rsa.PublicKey, labels []string, n *Notification) (Match, bool) {
	t.Helper()
	sig, err := base64.StdEncoding.DecodeString(n.Sign())
	if err != nil {
		t.Fatal(err)
	}
	hash := crypto.SHA256
	if n.SignType() == "RSA" {
		hash = crypto.SHA1
	}
	for _, rule := range []Rule{RuleV1, RuleV2} {
		content := n.SignedString(rule)
		var digest []byte
		if hash == crypto.SHA1 {
			sum := sha1.Sum(content)
			digest = sum[:]
		} else {
			sum := sha256.Sum256(content)
			digest = sum[:]
		}
		for i, k := range keys {
			if rsa.VerifyPKCS1v15(k, hash, digest, sig) == nil {
				return Match{Rule: rule, Key: labels[i]}, true
			}
		}
	}
	return Match{}, false
}

// TestVerifyMatchesCryptoRSA compares KeyRing.Verify (one exponentiation per
// key, both rules compared against it) with crypto/rsa trying V1 with every
// key and then V2, on rings of one and two keys in both orders, for
// notifications signed by either key under either rule with RSA2 and RSA,
// tampered ones, and signatures of the wrong length or out of range.
func TestVerifyMatchesCryptoRSA(t *testing.T) {
	priv := map[string]*rsa.PrivateKey{"alipay": testkit.Key(t, "alipay"), "alipay2": testkit.Key(t, "alipay2")}
	rings := [][]string{{"alipay"}, {"alipay2"}, {"alipay", "alipay2"}, {"alipay2", "alipay"}}
	type body struct{ name, text string }
	var bodies []body
	for _, signer := range []string{"alipay", "alipay2"} {
		for _, signType := range []string{"RSA2", "RSA"} {
			for _, v2 := range []bool{false, true} {
				params := testkit.Set(testkit.TradeParams(testkit.AppID, testkit.Now()), "sign_type", signType)
				signed := testkit.Signed(t, priv[signer], params, v2)
				name := fmt.Sprintf("%s/%s/v2=%v", signer, signType, v2)
				sign := testkit.Get(signed, "sign")
				raw, _ := base64.StdEncoding.DecodeString(sign)
				modulus := priv[signer].N.FillBytes(make([]byte, len(raw)))
				bodies = append(bodies,
					body{name, testkit.EncodeForm(signed)},
					body{name + "/tampered", testkit.EncodeForm(testkit.Set(signed, "total_amount", "0.01"))},
					body{name + "/other sign_type", testkit.EncodeForm(testkit.Set(signed, "sign_type", map[string]string{"RSA": "RSA2", "RSA2": "RSA"}[signType]))},
					body{name + "/short sign", testkit.EncodeForm(testkit.Set(signed, "sign", base64.StdEncoding.EncodeToString(raw[1:])))},
					body{name + "/long sign", testkit.EncodeForm(testkit.Set(signed, "sign", base64.StdEncoding.EncodeToString(append([]byte{0}, raw...))))},
					body{name + "/sign = n", testkit.EncodeForm(testkit.Set(signed, "sign", base64.StdEncoding.EncodeToString(modulus)))},
					body{name + "/sign = 1", testkit.EncodeForm(testkit.Set(signed, "sign", base64.StdEncoding.EncodeToString(new(big.Int).SetInt64(1).FillBytes(make([]byte, len(raw))))))},
				)
			}
		}
	}
	for _, vec := range testkit.LoadVectors(t) {
		if strings.Contains(vec.Name, "rsa2") {
			bodies = append(bodies, body{"vector " + vec.Name, vec.Body})
		}
	}
	for _, names := range rings {
		var keys []*rsa.PublicKey
		var labels []string
		ring := new(KeyRing)
		for _, name := range names {
			keys = append(keys, &priv[name].PublicKey)
			labels = append(labels, name)
			if err := ring.Add(name, &priv[name].PublicKey); err != nil {
				t.Fatal(err)
			}
		}
		for _, vec := range testkit.LoadVectors(t) {
			if strings.Contains(vec.Name, "rsa2") {
				key, err := ParsePublicKey(vec.Key.AlipayPublicKey)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := ring.Contains(key); !ok {
					keys = append(keys, key.(*rsa.PublicKey))
					labels = append(labels, "vector "+vec.Name)
					if err := ring.Add("vector "+vec.Name, key); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		for _, b := range bodies {
			t.Run(strings.Join(names, "+")+"/"+b.name, func(t *testing.T) {
				n, err := ParseNotification([]byte(b.text))
				if err != nil {
					t.Fatal(err)
				}
				want, wantOK := referenceVerify(t, keys, labels, n)
				got, err := ring.Verify(n)
				switch {
				case wantOK && (err != nil || got != want):
					t.Fatalf("Verify = %+v, %v; crypto/rsa: %+v", got, err, want)
				case !wantOK && (err == nil || !errors.Is(err, ErrSignatureMismatch)):
					t.Fatalf("Verify = %+v, %v; crypto/rsa refuses it", got, err)
				}
				label, ok := ring.Check(n.SignType(), n.SignedString(want.Rule), mustDecode(t, n.Sign()))
				if ok != wantOK || label != want.Key {
					t.Fatalf("Check = %q, %v; crypto/rsa: %+v, %v", label, ok, want, wantOK)
				}
			})
		}
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAddRefusesUnusableRSAKeys: an RSA key with which crypto/rsa would
// refuse every signature is refused when it is added, naming the key.
func TestAddRefusesUnusableRSAKeys(t *testing.T) {
	good := testkit.Key(t, "alipay").PublicKey
	// An odd 512-bit number: crypto/rsa refuses the size before anything else.
	small := new(big.Int).SetBit(new(big.Int).Rsh(good.N, uint(good.N.BitLen()-512)), 0, 1)
	for name, key := range map[string]*rsa.PublicKey{
		"512-bit":       {N: small, E: good.E},
		"even exponent": {N: good.N, E: 65536},
		"exponent 1":    {N: good.N, E: 1},
		"even modulus":  {N: new(big.Int).Lsh(good.N, 1), E: good.E},
	} {
		t.Run(name, func(t *testing.T) {
			if err := new(KeyRing).Add("key #1", key); err == nil || !strings.Contains(err.Error(), "key #1") {
				t.Fatalf("Add = %v, want an error naming the key", err)
			}
		})
	}
	if err := new(KeyRing).Add("key #1", &good); err != nil {
		t.Fatal(err)
	}
}
