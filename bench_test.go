package alipaynotify

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

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
			req := httptest.NewRequest(http.MethodPost, "/alipay/notify", strings.NewReader(body))
			req.Header.Set("Content-Type", testkit.ContentType)
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
