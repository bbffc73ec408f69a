package alipaynotify

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/outbox"
	"github.com/prometheus/client_golang/prometheus"
)

// allOutcomes are pre-set to zero so that dashboards and alerts see every
// series from the first scrape, not only after the first failure.
var allOutcomes = []string{
	outcomeForwarded, outcomeFiltered, outcomeDeliveredEarlier, outcomeMethodNotAllowed, outcomeTooLarge,
	outcomeBadRequest, outcomeBadSignature, outcomeAppRefused, outcomeSellerRefused,
	outcomeStale, outcomeNotifyVerifyFailed, outcomeNotifyVerifyError, outcomeUpstreamError, outcomeUpstreamTimeout,
}

// gateOutcomes are alipay_verify's outcomes, pre-set to zero likewise.
var gateOutcomes = []string{
	outcomeVerified, outcomeMethodNotAllowed, outcomeTooLarge, outcomeBadRequest, outcomeBadSignature,
	outcomeAppRefused, outcomeSellerRefused, outcomeStale, outcomeNotifyVerifyFailed, outcomeNotifyVerifyError,
}

// outboxResults are the outbox delivery results, pre-set to zero.
var outboxResults = []outbox.Outcome{outbox.OutcomeAccepted, outbox.OutcomeRefused, outbox.OutcomeError, outbox.OutcomeTimeout}

// metrics are the handler's Prometheus collectors on Caddy's registry.
type metrics struct {
	notifications    outcomeCounters
	upstreamDuration prometheus.Histogram
	verifyDuration   prometheus.Histogram
	outboxDeliveries *prometheus.CounterVec
	outbox           *outboxCollector
}

// otherApp is the app_id label of every notification that is not for a
// configured app or Antom client (a forgery, a request that could not be
// parsed, a legacy MD5 notification, which carries no app_id): the label's
// values stay bounded by the configuration.
const otherApp = "other"

// newMetrics registers the collectors on registry, or reuses those already
// there: every alipay_notify handler of a config shares them, and Caddy
// gives each config load a new registry, so a reload starts clean. apps are
// the handler's app IDs and Antom client IDs, whose series are created at
// zero with every outcome.
func newMetrics(registry prometheus.Registerer, apps []string) (*metrics, error) {
	const namespace, subsystem = "caddy", "alipay_notify"
	notifications, err := registerOrReuse(registry, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "notifications_total",
		Help: "Alipay notifications handled, by outcome and app (app_id or Antom client ID; \"other\" for any other).",
	}, []string{"outcome", "app_id"}))
	if err != nil {
		return nil, err
	}
	upstream, err := registerOrReuse(registry, prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "upstream_duration_seconds",
		Help:    "Time from sending a webhook upstream to reading its answer, whatever the answer.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}))
	if err != nil {
		return nil, err
	}
	verify, err := registerOrReuse(registry, prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "verify_duration_seconds",
		Help:    "Time to parse a notification, verify its signature and apply the policy.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025},
	}))
	if err != nil {
		return nil, err
	}
	deliveries, err := registerOrReuse(registry, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "outbox_deliveries_total",
		Help: "Outbox delivery attempts, by result: accepted (2xx), refused (another status), error (no answer), timeout.",
	}, []string{"result"}))
	if err != nil {
		return nil, err
	}
	gauges, err := registerOrReuse(registry, newOutboxCollector(namespace, subsystem))
	if err != nil {
		return nil, err
	}
	for _, result := range outboxResults {
		deliveries.WithLabelValues(string(result))
	}
	return &metrics{notifications: newOutcomeCounters(notifications, apps, allOutcomes), upstreamDuration: upstream,
		verifyDuration: verify, outboxDeliveries: deliveries, outbox: gauges}, nil
}

// newGateMetrics registers alipay_verify's counter (or reuses the one
// there: every gate of a config shares it), its series for apps and
// otherApp created at zero with every outcome.
func newGateMetrics(registry prometheus.Registerer, apps []string) (outcomeCounters, error) {
	requests, err := registerOrReuse(registry, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "alipay_verify", Name: "requests_total",
		Help: "Requests alipay_verify checked, by outcome (verified: passed on) and app (app_id; \"other\" for any other).",
	}, []string{"outcome", "app_id"}))
	if err != nil {
		return outcomeCounters{}, err
	}
	return newOutcomeCounters(requests, apps, gateOutcomes), nil
}

// outcomeCounters are the children of an {outcome, app_id} counter for the
// configured apps and otherApp, built once, so that counting a request is
// two map look-ups instead of hashing label values. An app_id that is not
// configured counts as otherApp: the label's values stay bounded.
type outcomeCounters struct {
	vec   *prometheus.CounterVec
	byApp map[string]map[string]prometheus.Counter
}

// newOutcomeCounters creates vec's series of every outcome for apps and
// otherApp, at zero.
func newOutcomeCounters(vec *prometheus.CounterVec, apps, outcomes []string) outcomeCounters {
	c := outcomeCounters{vec: vec, byApp: make(map[string]map[string]prometheus.Counter, len(apps)+1)}
	for _, app := range append(slices.Clone(apps), otherApp) {
		byOutcome := make(map[string]prometheus.Counter, len(outcomes))
		for _, outcome := range outcomes {
			byOutcome[outcome] = vec.WithLabelValues(outcome, app)
		}
		c.byApp[app] = byOutcome
	}
	return c
}

// count adds one to the series of outcome and appID.
func (c outcomeCounters) count(outcome, appID string) {
	label := appID
	byOutcome, ok := c.byApp[appID]
	if !ok || appID == "" {
		label, byOutcome = otherApp, c.byApp[otherApp]
	}
	if counter, ok := byOutcome[outcome]; ok {
		counter.Inc()
		return
	}
	c.vec.WithLabelValues(outcome, label).Inc() // an outcome not listed at creation
}

// outboxCollector reports the outbox gauges of a config's handlers at
// scrape time, from each worker's last scan (at most 2 s old): entries by
// state, summed over the handlers, and the age of the oldest pending
// entry. Every instance on a shared storage reports the whole cluster's
// outbox.
type outboxCollector struct {
	entries, oldest *prometheus.Desc
	mu              sync.Mutex
	workers         map[*outbox.Worker]bool
}

func newOutboxCollector(namespace, subsystem string) *outboxCollector {
	return &outboxCollector{
		entries: prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, "outbox_entries"),
			"Outbox entries, by state: pending (being redelivered), dead (given up, replayable), delivered (kept for keep).",
			[]string{"state"}, nil),
		oldest: prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, "outbox_oldest_pending_seconds"),
			"Age of the oldest pending outbox entry, from its first failure; 0 when none is pending.", nil, nil),
		workers: make(map[*outbox.Worker]bool),
	}
}

// add counts a handler's worker; remove stops counting it.
func (c *outboxCollector) add(w *outbox.Worker) {
	c.mu.Lock()
	c.workers[w] = true
	c.mu.Unlock()
}

func (c *outboxCollector) remove(w *outbox.Worker) {
	c.mu.Lock()
	delete(c.workers, w)
	c.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.oldest
}

// Collect implements prometheus.Collector: every series, zero included, so
// that dashboards and alerts see them from the first scrape.
func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	var pending, dead, delivered int
	var oldest time.Duration
	now := time.Now()
	// One snapshot per namespace (forward URL): handlers that forward to
	// the same URL share one outbox, which their workers (one per set of
	// forwarding settings) each count whole.
	byForward := make(map[string]outbox.Stats)
	c.mu.Lock()
	for w := range c.workers {
		s, key := w.Stats(), w.Forward()
		if prev, ok := byForward[key]; !ok || s.At.After(prev.At) {
			byForward[key] = s
		}
	}
	c.mu.Unlock()
	// Entries of forward URLs that no handler here delivers to (a reload
	// changed the URL) count too: the gauges are the whole outbox, and
	// the oldest pending entry's age is what alerts on them.
	for _, s := range outbox.Unserved() {
		if _, ok := byForward[s.Forward]; !ok {
			byForward[s.Forward] = s
		}
	}
	for _, s := range byForward {
		pending, dead, delivered = pending+s.Pending, dead+s.Dead, delivered+s.Delivered
		oldest = max(oldest, s.OldestPendingAge(now))
	}
	for state, n := range map[outbox.State]int{outbox.Pending: pending, outbox.Dead: dead, outbox.Delivered: delivered} {
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(n), string(state))
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, oldest.Seconds())
}

// registerOrReuse registers c, or returns the equal collector registered
// before (never MustRegister: a second handler or a reload must not panic).
func registerOrReuse[C prometheus.Collector](registry prometheus.Registerer, c C) (C, error) {
	err := registry.Register(c)
	if err == nil {
		return c, nil
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("registering metrics: %w", err)
}
