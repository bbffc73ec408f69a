package alipaynotify

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddy-alipay/caddy-alipay-notify/antom"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

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
	vec := testkit.LoadVector(b, "trade-rsa2-production.json")
	forged := testkit.LoadVector(b, "trade-rsa2-production-tampered-amount.json")
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
			serveBench(b, h, body, wantStatus)
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
			req.Header.Set("Content-Type", testkit.ContentType)
			rec := httptest.NewRecorder()
			rec.WriteHeader(http.StatusOK)
		}
	})
}

// newBenchHandler provisions a Handler for the vector's app and key, with
// max_age off (the testkit.Vector is from 2019), logging JSON at INFO to io.Discard.
func newBenchHandler(b *testing.B, vec testkit.Vector, forward string) *Handler {
	b.Helper()
	h := &Handler{
		Verifier: Verifier{
			AppIDs:    []string{vec.AppID},
			KeySource: KeySource{AlipayPublicKeys: []string{vec.Key.AlipayPublicKey}},
			MaxAge:    -1,
		},
		Forward:        forward,
		WebhookSecrets: []string{testkit.Secret},
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

// BenchmarkAntomVersusDomestic compares the Antom path (DESIGN.md §10) with
// the domestic one on the same key size: both real vectors are signed with
// 2048-bit RSA over SHA-256 (the domestic body is 1161 bytes, the Antom
// one 1751). "verify" is the verification a handler makes before it
// forwards: domestic, parse the form, verify, check the policy (h.check);
// Antom, parse the Signature header and Request-Time, the body rules, hash
// the signed content, verify (KeyRing.Verify, as handleAntom calls it).
// "handler" is the whole ServeHTTP path of BenchmarkHandler for each. The
// target is Antom within 1.2x of domestic.
//
//	go test -run '^$' -bench 'BenchmarkAntomVersusDomestic' -benchmem .
func BenchmarkAntomVersusDomestic(b *testing.B) {
	domestic := testkit.LoadVector(b, "trade-rsa2-production.json")
	antomVec := testkit.LoadAntomVector(b, "sandbox-response-rsa256.json")
	domesticKey, err := antom.ParsePublicKey(domestic.Key.AlipayPublicKey)
	if err != nil {
		b.Fatal(err)
	}
	antomKey, err := antom.ParsePublicKey(antomVec.AntomPublicKey)
	if err != nil {
		b.Fatal(err)
	}
	if domesticKey.N.BitLen() != 2048 || antomKey.N.BitLen() != 2048 {
		b.Fatalf("key sizes %d and %d, want both 2048", domesticKey.N.BitLen(), antomKey.N.BitLen())
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer upstream.Close()
	// One endpoint serving both, max_age off (the vectors are from 2019
	// and 2025).
	h := &Handler{
		Verifier: Verifier{
			AppIDs:    []string{domestic.AppID},
			KeySource: KeySource{AlipayPublicKeys: []string{domestic.Key.AlipayPublicKey}},
			MaxAge:    -1,
		},
		Antom:          []AntomClient{{ClientID: antomVec.ClientID, AntomPublicKeys: []string{antomVec.AntomPublicKey}}},
		Forward:        upstream.URL + "/hooks",
		WebhookSecrets: []string{testkit.Secret},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = h.Cleanup() }()
	h.logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))

	domesticBody := []byte(domestic.Body)
	antomBody := []byte(antomVec.Body)
	b.Run("verify/domestic", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ref := h.check(ctx, domesticBody); ref != nil {
				b.Fatal(ref.reason)
			}
		}
	})
	b.Run("verify/antom", func(b *testing.B) {
		ring := h.antomRings[antomVec.ClientID]
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ring.Verify(&antom.Request{
				Method: http.MethodPost, URI: antomVec.URI, ClientID: antomVec.ClientID,
				RequestTime: antomVec.RequestTime, Signature: antomVec.SignatureHeader, Body: antomBody,
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
	serve := func(b *testing.B, newRequest func() *http.Request) {
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			_ = h.ServeHTTP(rec, newRequest(), nil)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d %q", rec.Code, rec.Body.String())
			}
		}
	}
	b.Run("handler/domestic", func(b *testing.B) {
		serve(b, func() *http.Request {
			req := httptest.NewRequest(http.MethodPost, "/alipay/notify", bytes.NewReader(domesticBody))
			req.Header.Set("Content-Type", testkit.ContentType)
			return req
		})
	})
	b.Run("handler/antom", func(b *testing.B) {
		serve(b, func() *http.Request {
			req := httptest.NewRequest(http.MethodPost, antomVec.URI, bytes.NewReader(antomBody))
			req.Header = testkit.AntomHeaders(antomVec.ClientID, antomVec.RequestTime, antomVec.SignatureHeader)
			return req
		})
	})
}
