package alipaynotify

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// BenchmarkHandlerOutbox is BenchmarkHandler's whole ServeHTTP path with and
// without an outbox (file_system storage in a temporary folder):
//
//	go test -run '^$' -bench 'BenchmarkHandlerOutbox' -benchmem .
//
// "accepted" is the happy path, the upstream answers 204 (the real vector,
// one notify_id): with the outbox, two index lookups and no storage access;
// the difference is the outbox's cost on the happy path. "refused" is the
// failure path, the upstream answers 503; every notification has a
// notify_id of its own (pre-signed, outside the timer), so with the outbox
// each one writes a new entry, fsynced, before the answer; the difference
// is the failure path's cost.
func BenchmarkHandlerOutbox(b *testing.B) {
	vec := testkit.LoadVector(b, "trade-rsa2-production.json")
	var status atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(int(status.Load()))
	}))
	defer upstream.Close()

	for _, withOutbox := range []bool{false, true} {
		name := "outbox=off"
		if withOutbox {
			name = "outbox=on"
		}
		b.Run("accepted/"+name, func(b *testing.B) {
			status.Store(http.StatusNoContent)
			h := newOutboxBenchHandler(b, vec.AppID, vec.Key.AlipayPublicKey, -1, upstream.URL+"/accepted", withOutbox)
			b.ReportAllocs()
			for b.Loop() {
				serveBench(b, h, vec.Body, http.StatusOK)
			}
		})
		b.Run("refused/"+name, func(b *testing.B) {
			status.Store(http.StatusServiceUnavailable)
			h := newOutboxBenchHandler(b, testkit.AppID, testkit.PublicKeyLine(b, "alipay"), 0, upstream.URL+"/refused", withOutbox)
			b.StopTimer()
			bodies := presignUnique(b, b.N, name)
			b.StartTimer()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				serveBench(b, h, bodies[i], http.StatusBadGateway)
			}
		})
	}
}

func serveBench(b *testing.B, h *Handler, body string, want int) {
	req := httptest.NewRequest(http.MethodPost, "/alipay/notify", strings.NewReader(body))
	req.Header.Set("Content-Type", testkit.ContentType)
	rec := httptest.NewRecorder()
	_ = h.ServeHTTP(rec, req, nil)
	if rec.Code != want {
		b.Fatalf("status %d %q, want %d", rec.Code, rec.Body.String(), want)
	}
}

// presignUnique signs n genuine notifications with notify_ids of their own,
// on every CPU.
var presignSeq atomic.Int64

func presignUnique(b *testing.B, n int, tag string) []string {
	run := presignSeq.Add(1)
	return testkit.Presign(b, n, func(i int) string {
		return fmt.Sprintf("bench-%d-%s-%d", run, strings.TrimPrefix(tag, "outbox="), i)
	})
}

// newOutboxBenchHandler provisions a Handler in a Caddy context whose
// storage is a file_system folder of its own, with the outbox (defaults)
// or without, logging JSON at INFO to io.Discard; maxAge -1 is off.
func newOutboxBenchHandler(b *testing.B, appID, key string, maxAge caddy.Duration, forward string, withOutbox bool) *Handler {
	b.Helper()
	h := &Handler{
		Verifier: Verifier{
			AppIDs:    []string{appID},
			KeySource: KeySource{AlipayPublicKeys: []string{key}},
			MaxAge:    maxAge,
		},
		Forward:        forward,
		WebhookSecrets: []string{testkit.Secret},
	}
	if withOutbox {
		h.Outbox = &Outbox{}
	}
	dir := b.TempDir()
	storage, _ := json.Marshal(map[string]string{"module": "file_system", "root": dir})
	provisioned, err := caddy.ProvisionContext(&caddy.Config{StorageRaw: storage})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(provisioned) // the same config, so the same storage
	b.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Cleanup() })
	h.logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	if withOutbox {
		// Let the worker's first scan finish, so that Lookup runs warm
		// (an index lookup) as it does in a running Caddy.
		for h.outbox.worker.Stats().At.IsZero() {
			time.Sleep(time.Millisecond)
		}
	}
	return h
}
