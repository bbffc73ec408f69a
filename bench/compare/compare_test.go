// Package compare benchmarks alipay_notify's verifier (the alipay package)
// beside the two most used Go Alipay SDKs, smartwalle/alipay and
// go-pay/gopay, on the real vectors of ../../testdata/vectors, and checks
// that all three reach the same verdict on every vector.
//
//	cd bench && go test ./compare
//	cd bench && go test -run '^$' -bench . -benchmem ./compare
package compare

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gopayalipay "github.com/go-pay/gopay/alipay"
	smartwalle "github.com/smartwalle/alipay/v3"
	"github.com/smartwalle/ncrypto"
	"github.com/smartwalle/nsign"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
)

const vectorDir = "../../testdata/vectors"

// vector is one Alipay vector file (the fields this package needs).
type vector struct {
	Name string `json:"name"`
	Body string `json:"body"`
	Key  struct {
		AlipayPublicKey string `json:"alipay_public_key"`
	} `json:"key"`
	Expect struct {
		Verified     bool   `json:"verified"`
		ContentRule  string `json:"content_rule"`
		StringToSign string `json:"string_to_sign"`
	} `json:"expect"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(vectorDir, "*rsa2*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors in %s: %v", vectorDir, err)
	}
	var vectors []vector
	for _, f := range files {
		vectors = append(vectors, loadVector(t, f))
	}
	return vectors
}

func loadVector(t testing.TB, path string) vector {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v vector
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// verifier is one implementation's "is this body a notification signed by
// this key" for a given key, set up once (as a server would at start-up).
type verifier func(body []byte) bool

// pluginVerifier is alipay_notify's own verifier: the handler's rules
// (V1, then V2) behind its Go API.
func pluginVerifier(t testing.TB, key string) verifier {
	ring, err := alipay.NewKeyRing(key)
	if err != nil {
		t.Fatal(err)
	}
	return func(body []byte) bool {
		n, err := alipay.ParseNotification(body)
		if err != nil {
			return false
		}
		_, err = ring.Verify(n)
		return err == nil
	}
}

// smartwalleVerifier uses smartwalle/alipay's notification API
// (Client.VerifySign over url.ParseQuery of the body, the V1 rule). Like
// Alipay's Node SDK, it then tries the V2 rule (sign_type kept in the signed
// string) with the same library's signer, which VerifySign cannot do.
func smartwalleVerifier(t testing.TB, key string) verifier {
	appKey, err := os.ReadFile("../../testdata/keys/app.key.pem") // New needs the app's private key
	if err != nil {
		t.Fatal(err)
	}
	client, err := smartwalle.New("2021000000000001", string(appKey), true)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.LoadAliPayPublicKey(key); err != nil {
		t.Fatal(err)
	}
	pub, err := ncrypto.DecodePublicKey([]byte(key)).PKIX().RSAPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	v2 := nsign.New(nsign.WithMethod(nsign.NewRSAMethod(crypto.SHA256, nil, pub)), nsign.WithEncoder(smartwalle.Encoder{}))
	return func(body []byte) bool {
		values, err := url.ParseQuery(string(body))
		if err != nil {
			return false
		}
		if client.VerifySign(context.Background(), values) == nil {
			return true
		}
		sig, err := base64.StdEncoding.DecodeString(values.Get("sign"))
		return err == nil && v2.VerifyValues(values, sig, nsign.WithIgnore("sign")) == nil
	}
}

// gopayVerifier uses go-pay/gopay's notification API (ParseNotifyByURLValues
// and VerifySign, the V1 rule), then the V2 rule with the same library's
// signed-string builder and VerifySyncSign.
func gopayVerifier(t testing.TB, key string) verifier {
	key = oneLine(key) // gopay wants the console's one-line form and adds the PEM armour itself
	return func(body []byte) bool {
		values, err := url.ParseQuery(string(body))
		if err != nil {
			return false
		}
		bm, err := gopayalipay.ParseNotifyByURLValues(values)
		if err != nil {
			return false
		}
		sign := bm.GetString("sign")
		if ok, err := gopayalipay.VerifySign(key, bm); ok && err == nil {
			return true
		}
		// VerifySign removed sign and sign_type from bm: rebuild it.
		bm, _ = gopayalipay.ParseNotifyByURLValues(values)
		bm.Remove("sign")
		ok, err := gopayalipay.VerifySyncSign(key, bm.EncodeAliPaySignParams(), sign)
		return ok && err == nil
	}
}

var implementations = []struct {
	name string
	new  func(testing.TB, string) verifier
}{
	{"plugin", pluginVerifier},
	{"smartwalle", smartwalleVerifier},
	{"gopay", gopayVerifier},
}

// TestVerdictsAgree: every implementation verifies both valid vectors and
// refuses the three forged ones.
func TestVerdictsAgree(t *testing.T) {
	vectors := loadVectors(t)
	valid, forged := 0, 0
	for _, vec := range vectors {
		if vec.Expect.Verified {
			valid++
		} else {
			forged++
		}
		for _, impl := range implementations {
			if got := impl.new(t, vec.Key.AlipayPublicKey)([]byte(vec.Body)); got != vec.Expect.Verified {
				t.Errorf("%s on %s: verified=%v, want %v", impl.name, vec.Name, got, vec.Expect.Verified)
			}
		}
	}
	if valid != 2 || forged != 3 {
		t.Errorf("%d valid and %d forged vectors, want 2 and 3", valid, forged)
	}
}

// BenchmarkVerify runs each implementation on the real trade notification
// (testdata/vectors/trade-rsa2-production.json), from the raw body to the
// verdict, with the key parsed once beforehand where the API allows it
// (gopay's VerifySign parses its key string on every call: that is its API).
// floor is SHA-256 and rsa.VerifyPKCS1v15 of the precomputed signed string
// with the same key, the least any verifier must do. Compare within one run:
//
//	go test -run '^$' -bench . -benchmem -count 10 ./compare
func BenchmarkVerify(b *testing.B) {
	vec := loadVector(b, filepath.Join(vectorDir, "trade-rsa2-production.json"))
	b.Run("floor", func(b *testing.B) {
		key := parseKey(b, vec.Key.AlipayPublicKey)
		values, _ := url.ParseQuery(vec.Body)
		sig, err := base64.StdEncoding.DecodeString(values.Get("sign"))
		if err != nil {
			b.Fatal(err)
		}
		content := []byte(vec.Expect.StringToSign)
		b.ReportAllocs()
		for b.Loop() {
			digest := sha256.Sum256(content)
			if rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig) != nil {
				b.Fatal("floor does not verify")
			}
		}
	})
	for _, impl := range implementations {
		b.Run(impl.name, func(b *testing.B) {
			verify := impl.new(b, vec.Key.AlipayPublicKey)
			body := []byte(vec.Body) // as a server reads it
			b.ReportAllocs()
			for b.Loop() {
				if !verify(body) {
					b.Fatalf("%s does not verify the vector", impl.name)
				}
			}
		})
	}
}

// oneLine turns a PEM public key into the one line of base64 that Alipay's
// console shows.
func oneLine(key string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(key), "\n") {
		if line = strings.TrimSpace(line); !strings.HasPrefix(line, "-----") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func parseKey(t testing.TB, line string) *rsa.PublicKey {
	t.Helper()
	ring, err := alipay.NewKeyRing(line) // validates; then parse the same bytes for the floor
	if err != nil || ring == nil {
		t.Fatal(err)
	}
	pub, err := ncrypto.DecodePublicKey([]byte(strings.TrimSpace(line))).PKIX().RSAPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}
