package outbox_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/outbox"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// How a handler uses the outbox: a Worker per handler, started in
// Provision and stopped in Cleanup; on every verified notification a
// Lookup, then RecordFailure or MarkDelivered as the forward went.
func Example() {
	// In Provision: storage is ctx.Storage(), logger ctx.Logger().
	var storage certmagic.Storage = &certmagic.FileStorage{Path: "/var/lib/caddy"}
	logger := zap.NewNop()
	forward := "http://127.0.0.1:8080/hooks/alipay"

	store := outbox.NewStore(storage, logger)
	w, err := outbox.NewWorker(store, outbox.WorkerConfig{
		Forward:  forward,
		Schedule: outbox.Schedule{Retry: []time.Duration{5 * time.Second, 30 * time.Second}}, // give_up, keep: defaults
		Logger:   logger,
		Deliver: func(ctx context.Context, e outbox.Entry) outbox.Result {
			// The handler's forwarder: same webhook-id, type and body, a
			// new webhook-timestamp and signature.
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, forward, bytes.NewReader(e.Body))
			if err != nil {
				return outbox.Failed(err)
			}
			req.Header["webhook-id"] = []string{e.ID}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return outbox.Classify(0, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return outbox.Classify(resp.StatusCode, nil)
		},
		OnDelivery: func(e outbox.Entry, r outbox.Result) { /* deliveries_total{result=r.Outcome}++ */ },
		OnStats:    func(s outbox.Stats) { /* entries{state}, oldest_pending_seconds */ },
	})
	if err != nil {
		panic(err)
	}
	if err := w.Start(context.Background()); err != nil {
		panic(err)
	}
	defer w.Stop() // in Cleanup

	// In ServeHTTP, after verification and policy:
	ctx := context.Background()
	id, typ, body := "2019081500222155625035450570486459", "alipay.trade_status_sync", []byte(`{"type":"alipay.trade_status_sync"}`)
	state, err := w.Lookup(ctx, id)
	if err != nil {
		logger.Warn("outbox lookup failed; forwarding", zap.Error(err))
	}
	if state == outbox.Delivered {
		fmt.Println("success") // outcome delivered_earlier, no forward
		return
	}
	accepted := false // ... forward inline ...
	if accepted {
		if state != "" { // pending or dead in the outbox: now delivered
			w.MarkDelivered(ctx, id)
		}
		fmt.Println("success")
		return
	}
	if _, err := w.RecordFailure(ctx, id, typ, body, "upstream answered 502"); err != nil {
		logger.Error("outbox write failed", zap.String("notify_id", id), zap.Error(err))
	}
	fmt.Println("fail") // 502 or 504 as before
}
