package alipaynotify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/outbox"
)

// Outbox is alipay_notify's outbox (DESIGN.md §9): a verified notification
// that the upstream did not accept is written to Caddy's configured storage
// before Alipay is answered "fail", and redelivered on the retry schedule,
// so that an order is updated seconds after the upstream recovers, and
// delivered for days after Alipay gives up (about 25 hours). Alipay's retry
// of a notification the outbox already delivered is answered "success"
// without a second forward. The promise does not change: "success" only for
// a notification the upstream accepted.
type Outbox struct {
	// Retry lists the delay before the first outbox delivery, then between
	// deliveries; the last delay repeats. Default 5s 30s 2m 10m 30m 1h.
	Retry []caddy.Duration `json:"retry,omitempty"`

	// GiveUp ends automatic delivery this long after the first failure: the
	// entry is dead, kept for Keep, and can be replayed through the admin
	// API or "caddy alipay-notify outbox replay". Default 7d.
	GiveUp caddy.Duration `json:"give_up,omitempty"`

	// Keep removes delivered and dead entries this long after they were
	// delivered or died. Default 30d.
	Keep caddy.Duration `json:"keep,omitempty"`
}

// schedule converts the configuration, defaults filled in.
func (o *Outbox) schedule() (outbox.Schedule, error) {
	var s outbox.Schedule
	for _, d := range o.Retry {
		s.Retry = append(s.Retry, time.Duration(d))
	}
	s.GiveUp, s.Keep = time.Duration(o.GiveUp), time.Duration(o.Keep)
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return s, fmt.Errorf("outbox: %w", err)
	}
	return s, nil
}

// outboxWorkers keeps one delivery worker per handler per instance across
// reloads: a reload that keeps a handler's forwarding settings keeps its
// worker (and its index of the entries) running, instead of starting a
// second one next to it for the moment both configs are loaded.
var outboxWorkers = caddy.NewUsagePool()

// pooledWorker is a worker with its own forwarder (the config that made it
// may be unloaded while it runs) and the metrics of the current config.
type pooledWorker struct {
	worker    *outbox.Worker
	forwarder *forwarder
	metrics   atomic.Pointer[metrics]
}

// Destruct stops the worker when no loaded config uses it any more.
func (p *pooledWorker) Destruct() error {
	p.worker.Stop()
	p.forwarder.close()
	return nil
}

// deliver re-sends an entry: the same webhook-id and body, a new
// webhook-timestamp and signature; ctx is cancelled by Stop.
func (p *pooledWorker) deliver(ctx context.Context, e outbox.Entry) outbox.Result {
	sent := p.forwarder.send(ctx, e.ID, e.Body)
	if m := p.metrics.Load(); m != nil {
		m.upstreamDuration.Observe(sent.duration.Seconds())
	}
	return sent.outcome()
}

// provisionOutbox starts, or joins, the handler's outbox worker on Caddy's
// configured storage.
func (h *Handler) provisionOutbox(ctx caddy.Context, f *forwarder) error {
	sched, err := h.Outbox.schedule()
	if err != nil {
		return err
	}
	key, err := outboxKey(f, sched)
	if err != nil {
		return err
	}
	store := outbox.NewStore(ctx.Storage(), h.logger)
	value, _, err := outboxWorkers.LoadOrNew(key, func() (caddy.Destructor, error) {
		// A forwarder of its own, with the same settings: the config that
		// made this worker may be unloaded while the worker runs on.
		p := &pooledWorker{forwarder: newForwarder(f.upstream)}
		w, err := outbox.NewWorker(store, outbox.WorkerConfig{
			Forward:  f.url,
			Schedule: sched,
			Deliver:  p.deliver,
			Logger:   h.logger.Named("outbox"),
			OnDelivery: func(_ outbox.Entry, r outbox.Result) {
				if m := p.metrics.Load(); m != nil {
					m.outboxDeliveries.WithLabelValues(string(r.Outcome)).Inc()
				}
			},
		})
		if err != nil {
			return nil, err
		}
		if err := w.Start(context.Background()); err != nil {
			return nil, err
		}
		p.worker = w
		return p, nil
	})
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	h.outbox = value.(*pooledWorker)
	h.outbox.metrics.Store(h.metrics)
	h.metrics.outbox.add(h.outbox.worker)
	h.outboxKey = key
	return nil
}

// outboxKey names a worker by everything that shapes its deliveries, so
// that a reload changing any of them starts a new worker.
func outboxKey(f *forwarder, sched outbox.Schedule) (string, error) {
	settings, err := json.Marshal(struct {
		URL        string
		Headers    http.Header
		Timeout    time.Duration
		Secrets    [][]byte
		TrustedCAs [][]byte
		Schedule   outbox.Schedule
	}{f.url, f.headers, f.timeout, f.signer.keys, f.trustedCAs, sched})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(settings)
	return "alipay_notify.outbox." + hex.EncodeToString(sum[:]), nil
}

// deliveredEarlier reports whether the outbox already delivered this
// notification: then Alipay's retry is answered success without a second
// forward. A storage error is logged and the notification forwarded as
// usual (a duplicate is harmless, a refusal would make Alipay retry).
func (h *Handler) deliveredEarlier(ctx context.Context, id string) bool {
	delivered, err := h.outbox.worker.Delivered(ctx, id)
	if err != nil {
		h.logger.Error("outbox lookup failed; forwarding as usual", zap.String("notify_id", id), zap.Error(err))
	}
	return delivered
}

// recordOutcome keeps the outbox in step with an inline delivery: an
// accepted one marks its entry delivered, if there is one; a failed one is
// written before Alipay is answered fail. A failed write still answers fail
// (Alipay retries; nothing is lost) and logs one line. It returns true when
// the entry turns out delivered meanwhile (by another instance): then the
// upstream has accepted this webhook, and Alipay may be answered success.
func (h *Handler) recordOutcome(ctx context.Context, id, typ string, body []byte, sent forwardResult) (deliveredMeanwhile bool) {
	w := h.outbox.worker
	if sent.accepted() {
		if state, err := w.Lookup(ctx, id); err == nil && state == outbox.Pending {
			if _, err := w.MarkDelivered(ctx, id); err != nil {
				h.logger.Error("outbox: could not mark the entry delivered; the outbox may deliver it once more",
					zap.String("notify_id", id), zap.Error(err))
			}
		}
		return false
	}
	entry, err := w.RecordFailure(ctx, id, typ, body, sent.describe())
	if err != nil {
		h.logger.Error("outbox: could not write the entry; Alipay will retry",
			zap.String("notify_id", id), zap.Error(err))
		return false
	}
	return entry.State == outbox.Delivered
}
