package cluster

// Benchmarks of the outbox on the redis storage (a redis-server of the
// benchmark's own on 127.0.0.1), the counterparts of the file_system ones
// in the plugin's module (BenchmarkHandlerOutbox, internal/outbox's
// BenchmarkRecordFailure and BenchmarkDrain10000):
//
//	cd cluster && go test -run '^$' -bench Outbox -benchmem .

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	alipaynotify "github.com/caddy-alipay/caddy-alipay-notify"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/outbox"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// BenchmarkOutboxHandlerFailureRedis: the whole ServeHTTP path of a
// notification the upstream refuses (503), with and without the outbox on
// Redis; every notification has a notify_id of its own (pre-signed outside
// the timer), so with the outbox each one writes a new entry before the
// answer. The difference is the failure path's cost on Redis.
func BenchmarkOutboxHandlerFailureRedis(b *testing.B) {
	redisAddr := startRedis(b)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer upstream.Close()
	var run atomic.Int64
	for _, withOutbox := range []bool{false, true} {
		name := "outbox=off"
		if withOutbox {
			name = "outbox=on"
		}
		b.Run(name, func(b *testing.B) {
			h := redisHandler(b, redisAddr, upstream.URL, withOutbox)
			b.StopTimer()
			prefix := fmt.Sprintf("bench-%d", run.Add(1))
			bodies := testkit.Presign(b, b.N, func(i int) string { return fmt.Sprintf("%s-%d", prefix, i) })
			b.StartTimer()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				req := httptest.NewRequest(http.MethodPost, "/alipay/notify", strings.NewReader(bodies[i]))
				req.Header.Set("Content-Type", testkit.ContentType)
				rec := httptest.NewRecorder()
				_ = h.ServeHTTP(rec, req, nil)
				if rec.Code != http.StatusBadGateway {
					b.Fatalf("status %d %q, want 502", rec.Code, rec.Body.String())
				}
			}
		})
	}
}

// redisHandler provisions an alipay_notify handler in a Caddy context whose
// storage is the redis module on redisAddr.
func redisHandler(b *testing.B, redisAddr, forward string, withOutbox bool) *alipaynotify.Handler {
	b.Helper()
	h := &alipaynotify.Handler{
		Verifier: alipaynotify.Verifier{
			AppIDs:    []string{testkit.AppID},
			KeySource: alipaynotify.KeySource{AlipayPublicKeys: []string{testkit.PublicKeyLine(b, "alipay")}},
		},
		Forward:        forward,
		WebhookSecrets: []string{testkit.Secret},
	}
	if withOutbox {
		h.Outbox = &alipaynotify.Outbox{}
	}
	storage, _ := json.Marshal(map[string]any{"module": "redis", "address": []string{redisAddr}, "key_prefix": "bench"})
	provisioned, err := caddy.ProvisionContext(&caddy.Config{StorageRaw: storage})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(provisioned)
	b.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = h.Cleanup() })
	return h
}

// BenchmarkOutboxRecordFailureRedis: the failure path's write alone (a new
// entry) through outbox.Store on Redis.
func BenchmarkOutboxRecordFailureRedis(b *testing.B) {
	s := outbox.NewStore(openStorage(b, startRedis(b), "bench"), zap.NewNop())
	sched := outbox.DefaultSchedule()
	body := []byte(`{"type":"alipay.trade_status_sync","timestamp":"2026-01-01T00:00:00+08:00","data":{"notify_id":"x"}}`)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		f := outbox.Failure{Forward: "http://127.0.0.1:8080/hooks", ID: fmt.Sprint("n", i), Type: "alipay.trade_status_sync", Body: body, Error: "upstream answered 502"}
		if _, err := s.RecordFailure(ctx, sched, f, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOutboxDrain10000Redis: how long a backlog of 10 000 due entries
// takes to drain into an upstream that accepts everything (a real HTTP
// server), one Worker with the default concurrency on Redis, measured to
// the last recorded delivery.
func BenchmarkOutboxDrain10000Redis(b *testing.B) {
	const n = 10000
	redisAddr := startRedis(b)
	ctx := context.Background()
	for round := 0; b.Loop(); round++ {
		b.StopTimer()
		var accepted sync.Map
		var dups atomic.Int64
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			if _, seen := accepted.LoadOrStore(r.Header.Get("webhook-id"), true); seen {
				dups.Add(1)
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		prefix := fmt.Sprintf("drain-%d", round)
		s := outbox.NewStore(openStorage(b, redisAddr, prefix), zap.NewNop())
		// Seeded through the Store, due now: retry 1ns.
		sched := outbox.Schedule{Retry: []time.Duration{1}, GiveUp: time.Hour, Keep: time.Hour}
		testkit.Spread(16, n, func(i int) {
			id := fmt.Sprintf("2026%028d", i)
			f := outbox.Failure{Forward: up.URL, ID: id, Type: "alipay.trade_status_sync", Body: []byte(`{"id":"` + id + `"}`), Error: "upstream answered 502"}
			if _, err := s.RecordFailure(ctx, sched, f, time.Now()); err != nil {
				b.Error(err)
			}
		})
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		var done atomic.Int64
		w, err := outbox.NewWorker(s, outbox.WorkerConfig{
			Forward:  up.URL,
			Schedule: sched,
			Deliver: func(ctx context.Context, e outbox.Entry) outbox.Result {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, up.URL, bytes.NewReader(e.Body))
				if err != nil {
					return outbox.Failed(err)
				}
				req.Header.Set("webhook-id", e.ID)
				resp, err := client.Do(req)
				if err != nil {
					return outbox.Classify(0, err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return outbox.Classify(resp.StatusCode, nil)
			},
			OnDelivery: func(_ outbox.Entry, r outbox.Result) {
				if r.Outcome == outbox.OutcomeAccepted {
					done.Add(1)
				}
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := w.Start(ctx); err != nil {
			b.Fatal(err)
		}
		for done.Load() < n {
			time.Sleep(time.Millisecond)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		w.Stop()
		up.Close()
		if dups.Load() != 0 {
			b.Fatalf("%d duplicate deliveries", dups.Load())
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "entries/s")
		b.StartTimer()
	}
}
