package alipaynotify

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Benchmarks of the verification hot path. Run them side by side, so that
// the ratio to the floor is measured on the same machine in the same run:
//
//	go test -run '^$' -bench 'BenchmarkVerify' -benchmem -count 10 .
//
// The floor is what any verifier must do at least: hash the signed string
// and check the RSA signature (the signed string and the signature
// precomputed). BenchmarkVerify/plugin does everything the handler does to a
// body before the policy: parse, decode the charset, build the signed string,
// decode the signature, verify.

// benchVector loads the real Alipay-signed vector.
func benchVector(b *testing.B) (vec vector, key *rsa.PublicKey) {
	b.Helper()
	vec = loadVector(b, filepath.Join("testdata", "vectors", "trade-rsa2-production.json"))
	parsed, err := parsePublicKey(vec.Key.AlipayPublicKey)
	if err != nil {
		b.Fatal(err)
	}
	return vec, parsed.(*rsa.PublicKey)
}

func BenchmarkVerify(b *testing.B) {
	vec, key := benchVector(b)
	body := []byte(vec.Body)

	b.Run("floor", func(b *testing.B) {
		n, err := newNotification(body)
		if err != nil {
			b.Fatal(err)
		}
		content := []byte(vec.Expect.StringToSign)
		sig, err := base64.StdEncoding.DecodeString(n.raw.get("sign"))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			digest := sha256.Sum256(content)
			if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("plugin", func(b *testing.B) {
		keys := &Keys{ring: keyRing{{label: "vector", key: key}}}
		b.ReportAllocs()
		for b.Loop() {
			if err := keys.Verify(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParse isolates what the plugin adds to the floor.
func BenchmarkParse(b *testing.B) {
	vec, _ := benchVector(b)
	body := []byte(vec.Body)
	b.Run("form", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseForm(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("notification+content", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n, err := newNotification(body)
			if err != nil {
				b.Fatal(err)
			}
			_ = n.signedContent(ruleV1)
		}
	})
}

// BenchmarkHandler is the whole ServeHTTP path of a provisioned Handler: read
// the body, parse, verify, policy, build and sign the webhook, POST it to an
// in-process upstream over loopback (keep-alive) and answer. The log lines
// are encoded as in production (JSON, INFO) into io.Discard. "forged" is the
// tampered vector: parse, a failed RSA verification, a WARN line, 403.
// "harness" is the cost of the benchmark's own request and recorder, to
// subtract from the others.
//
//	go test -run '^$' -bench 'BenchmarkHandler' -benchmem .
func BenchmarkHandler(b *testing.B) {
	vec, _ := benchVector(b)
	forged := loadVector(b, filepath.Join("testdata", "vectors", "trade-rsa2-production-tampered-amount.json"))
	var hits atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer upstream.Close()
	h := newBenchHandler(b, vec, upstream.URL+"/hooks/alipay")

	run := func(b *testing.B, body string, wantStatus int) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/alipay/notify", strings.NewReader(body))
			req.Header.Set("Content-Type", alipayFormType)
			rec := httptest.NewRecorder()
			_ = h.ServeHTTP(rec, req, nil)
			if rec.Code != wantStatus {
				b.Fatalf("status %d %q, want %d", rec.Code, rec.Body.String(), wantStatus)
			}
		}
	}
	b.Run("valid", func(b *testing.B) {
		before := hits.Load()
		run(b, vec.Body, http.StatusOK)
		if hits.Load()-before != int64(b.N) {
			b.Fatalf("upstream got %d webhooks for %d notifications", hits.Load()-before, b.N)
		}
	})
	b.Run("forged", func(b *testing.B) {
		before := hits.Load()
		run(b, forged.Body, http.StatusForbidden)
		if hits.Load() != before {
			b.Fatal("a forged notification was forwarded")
		}
	})
	b.Run("harness", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/alipay/notify", strings.NewReader(vec.Body))
			req.Header.Set("Content-Type", alipayFormType)
			rec := httptest.NewRecorder()
			rec.WriteHeader(http.StatusOK)
		}
	})
}

// newBenchHandler provisions a Handler for the vector's app and key, with
// max_age off (the vector is from 2019), logging JSON at INFO to io.Discard.
func newBenchHandler(b *testing.B, vec vector, forward string) *Handler {
	b.Helper()
	h := &Handler{
		Verifier: Verifier{
			AppIDs:    []string{vec.AppID},
			KeySource: KeySource{AlipayPublicKeys: []string{vec.Key.AlipayPublicKey}},
			MaxAge:    -1,
		},
		Forward:        forward,
		WebhookSecrets: []string{testSecret},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Cleanup() })
	h.logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	return h
}
