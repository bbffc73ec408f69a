package alipaynotify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

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

// outboxStorageTimeout bounds the outbox's storage calls on the request
// path (the lookup, and the write before "fail"): a storage that hangs must
// not hold Alipay's request, or the handler's goroutine, for ever. Past it
// the call fails like any storage error: Alipay is answered as without an
// outbox, and retries.
const outboxStorageTimeout = 5 * time.Second

// pooledWorker is a worker with its own forwarder (the config that made it
// may be unloaded while it runs), logging, storing and counting through the
// configs that use it (see attach).
type pooledWorker struct {
	worker    *outbox.Worker
	forwarder *forwarder
	logger    *followingCore
	storage   *followingStorage // nil on a FileStorage, used as it is

	mu       sync.Mutex
	attached []attachment // in the order of provisioning; the last one leads
}

// attachment is one handler (of one loaded config) using the worker.
type attachment struct {
	handler *Handler
	metrics *metrics
	logger  *zap.Logger
	storage certmagic.Storage
}

// attach records that h, of a config being loaded, uses the worker: its
// deliveries are counted in that config's metrics, and the worker logs and
// stores through the newest config's logger and storage.
func (p *pooledWorker) attach(h *Handler, storage certmagic.Storage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attached = append(p.attached, attachment{handler: h, metrics: h.metrics, logger: h.logger, storage: storage})
	p.lead()
}

// detach undoes attach when h's config is unloaded (or failed to load):
// the newest config still loaded leads again.
func (p *pooledWorker) detach(h *Handler) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attached = slices.DeleteFunc(p.attached, func(a attachment) bool { return a.handler == h })
	p.lead()
}

// lead makes the newest attachment's logger and storage the worker's; p.mu
// held.
func (p *pooledWorker) lead() {
	if len(p.attached) == 0 {
		return
	}
	newest := p.attached[len(p.attached)-1]
	p.logger.follow(newest.logger.Core())
	if p.storage != nil {
		p.storage.follow(newest.storage)
	}
}

// eachMetrics calls f once per metrics registry of the configs using the
// worker: the handlers of one config share its registry's collectors, and
// a delivery is counted once there.
func (p *pooledWorker) eachMetrics(f func(*metrics)) {
	p.mu.Lock()
	seen := make(map[*prometheus.CounterVec]bool, len(p.attached))
	var ms []*metrics
	for _, a := range p.attached {
		if !seen[a.metrics.outboxDeliveries] {
			seen[a.metrics.outboxDeliveries] = true
			ms = append(ms, a.metrics)
		}
	}
	p.mu.Unlock()
	for _, m := range ms {
		f(m)
	}
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
	p.eachMetrics(func(m *metrics) { m.upstreamDuration.Observe(sent.duration.Seconds()) })
	return sent.outcome()
}

// provisionOutbox starts, or joins, the handler's outbox worker on Caddy's
// configured storage.
func (h *Handler) provisionOutbox(ctx caddy.Context, f *forwarder) error {
	sched, err := h.Outbox.schedule()
	if err != nil {
		return err
	}
	storage := ctx.Storage()
	key, err := outboxKey(f, sched, storage)
	if err != nil {
		return err
	}
	value, _, err := outboxWorkers.LoadOrNew(key, func() (caddy.Destructor, error) {
		// A forwarder of its own, with the same settings: the config that
		// made this worker may be unloaded while the worker runs on.
		p := &pooledWorker{forwarder: newForwarder(f.upstream), logger: newFollowingCore(h.logger.Core())}
		workerStorage := storage
		if _, isFile := storage.(*certmagic.FileStorage); !isFile {
			p.storage = newFollowingStorage(storage)
			workerStorage = p.storage
		}
		logger := zap.New(p.logger).Named(h.logger.Name() + ".outbox")
		w, err := outbox.NewWorker(outbox.NewStore(workerStorage, logger), outbox.WorkerConfig{
			Forward:  f.url,
			Schedule: sched,
			Deliver:  p.deliver,
			Logger:   logger,
			OnDelivery: func(_ outbox.Entry, r outbox.Result) {
				p.eachMetrics(func(m *metrics) { m.outboxDeliveries.WithLabelValues(string(r.Outcome)).Inc() })
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
	h.outbox.attach(h, storage)
	h.metrics.outbox.add(h.outbox.worker)
	h.outboxKey = key
	return nil
}

// cleanupOutbox leaves the handler's worker when its config is unloaded;
// the worker stops when no loaded config uses it.
func (h *Handler) cleanupOutbox() error {
	h.metrics.outbox.remove(h.outbox.worker)
	h.outbox.detach(h)
	_, err := outboxWorkers.Delete(h.outboxKey)
	return err
}

// outboxKey names a worker by everything that shapes its deliveries and by
// the storage it works on, so that a reload changing any of them starts a
// new worker (and stops the old one), and a reload changing none keeps it.
func outboxKey(f *forwarder, sched outbox.Schedule, storage certmagic.Storage) (string, error) {
	settings, err := json.Marshal(struct {
		URL        string
		Headers    http.Header
		Timeout    time.Duration
		Secrets    [][]byte
		TrustedCAs [][]byte
		Schedule   outbox.Schedule
		Storage    string
	}{f.url, f.headers, f.timeout, f.signer.keys, f.trustedCAs, sched, storageIdentity(storage)})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(settings)
	return "alipay_notify.outbox." + hex.EncodeToString(sum[:]), nil
}

// storageIdentity tells storages apart by their configuration, which stays
// the same across reloads while the value does not: a FileStorage by its
// path, another storage by its type and its String (storage modules print
// their configuration, secrets redacted) or its JSON form; failing both, by
// the value itself (then every reload starts a new worker, which is
// correct, only less smooth).
func storageIdentity(s certmagic.Storage) string {
	if fs, ok := s.(*certmagic.FileStorage); ok {
		return "file_system:" + fs.Path
	}
	if str, ok := s.(fmt.Stringer); ok {
		return fmt.Sprintf("%T:%s", s, str.String())
	}
	if b, err := json.Marshal(s); err == nil {
		return fmt.Sprintf("%T:%s", s, b)
	}
	return fmt.Sprintf("%T:%p", s, s)
}

// deliveredEarlier reports whether the outbox already delivered this
// notification: then Alipay's retry is answered success without a second
// forward. On a storage error the notification is forwarded as usual (a
// duplicate is harmless, a refusal would make Alipay retry); the error is
// noted in obx, for the notification's log line.
func (h *Handler) deliveredEarlier(ctx context.Context, id string, obx *outboxNote) bool {
	ctx, cancel := context.WithTimeout(ctx, outboxStorageTimeout)
	defer cancel()
	delivered, err := h.outbox.worker.Delivered(ctx, id)
	if err != nil {
		obx.add("the outbox lookup failed (forwarded as usual)", err)
	}
	return delivered
}

// recordOutcome keeps the outbox in step with an inline delivery: an
// accepted one marks its entry delivered, if there is one (pending, or dead
// after give_up); a failed one is written before Alipay is answered fail. A
// failed write still answers fail (Alipay retries; nothing is lost) and is
// noted in obx, for the notification's log line. It returns true when the
// entry turns out delivered meanwhile (by another instance): then the
// upstream has accepted this webhook, and Alipay may be answered success.
func (h *Handler) recordOutcome(ctx context.Context, id, typ string, body []byte, sent forwardResult, obx *outboxNote) (deliveredMeanwhile bool) {
	ctx, cancel := context.WithTimeout(ctx, outboxStorageTimeout)
	defer cancel()
	w := h.outbox.worker
	if sent.accepted() {
		// Lookup costs no storage access for an id the worker does not
		// know (the happy path writes nothing, and reads nothing either).
		state, err := w.Lookup(ctx, id)
		if err == nil && (state == outbox.Pending || state == outbox.Dead) {
			_, err = w.MarkDelivered(ctx, id)
		}
		if err != nil {
			obx.add("could not mark the outbox entry delivered (the outbox may deliver it once more)", err)
		}
		return false
	}
	entry, err := w.RecordFailure(ctx, id, typ, body, sent.describe())
	if err != nil {
		obx.add("could not write the outbox entry", err)
		return false
	}
	return entry.State == outbox.Delivered
}

// outboxNote collects what went wrong with the outbox while one
// notification was handled, so that it goes on that notification's one log
// line (DESIGN §5, §9: one line with the storage error and the notify_id)
// instead of lines of its own.
type outboxNote struct {
	problem string
	err     error
}

func (o *outboxNote) add(problem string, err error) {
	if o.err == nil {
		o.problem = problem
	} else {
		o.problem += "; " + problem
	}
	o.err = errors.Join(o.err, err)
}

// annotate adds the outbox's problem to the notification's log line, at
// ERROR: the storage needs an operator.
func (o *outboxNote) annotate(res result) result {
	if o.err == nil {
		return res
	}
	res.level = max(res.level, zapcore.ErrorLevel)
	res.message += "; " + o.problem
	res.fields = append(res.fields, zap.NamedError("outbox_error", o.err))
	return res
}
