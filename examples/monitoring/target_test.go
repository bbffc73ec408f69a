package monitoring

import (
	"math/rand/v2"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// startTarget starts the metrics endpoint that the live test's Prometheus
// scrapes, and returns its URL and drive, which produces some traffic of
// every kind each time it is called (the live test calls it every half
// second while it waits for data).
//
// TEMPORARY: this is a stand-in, a tiny HTTP server that exposes the final
// set of the plugin's metric families (names, labels, buckets) through
// client_golang with plausible values, written while the plugin's metrics
// were being changed. The integrator replaces it with a real Caddy running
// the plugin (see README.md, "Tests"): startTarget then starts Caddy with an
// alipay_notify handler (an outbox, a test upstream that sometimes fails or
// is slow) and its metrics endpoint, returns that endpoint's URL, and drive
// sends signed notifications (and a few forged, stale and malformed ones)
// to it. Nothing else in the tests changes.
func startTarget(t *testing.T) (metricsURL string, drive func()) {
	t.Helper()
	const namespace, subsystem = "caddy", "alipay_notify"
	registry := prometheus.NewRegistry()
	notifications := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "notifications_total",
		Help: "Alipay notifications handled, by outcome and app_id.",
	}, []string{"outcome", "app_id"})
	upstream := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "upstream_duration_seconds",
		Help:    "Time from sending a webhook upstream to reading its answer, whatever the answer.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	verify := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "verify_duration_seconds",
		Help:    "Time to parse a notification, verify its signature and apply the policy.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025},
	})
	entries := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "outbox_entries",
		Help: "Outbox entries, by state.",
	}, []string{"state"})
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "outbox_deliveries_total",
		Help: "Outbox delivery attempts, by result.",
	}, []string{"result"})
	oldest := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "outbox_oldest_pending_seconds",
		Help: "Age of the oldest pending outbox entry; 0 when none is pending.",
	})
	registry.MustRegister(notifications, upstream, verify, entries, deliveries, oldest)

	// Every series exists from the first scrape, at 0, as in the plugin.
	apps := []string{"2021000000000000", "2021000000000001", "SANDBOX_5YBZ2G2ZEP3U03085", "other"}
	for _, outcome := range knownOutcomes {
		for _, app := range apps {
			notifications.WithLabelValues(outcome, app)
		}
	}
	for _, state := range knownStates {
		entries.WithLabelValues(state)
	}
	for _, result := range knownResults {
		deliveries.WithLabelValues(result)
	}

	srv := httptest.NewServer(promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)

	var mu sync.Mutex
	pending, delivered, age := 0, 0, 0.0
	drive = func() {
		mu.Lock()
		defer mu.Unlock()
		for range 5 {
			app := apps[rand.IntN(len(apps)-1)] // a configured app
			verify.Observe(0.0002 + rand.Float64()*0.002)
			switch r := rand.IntN(10); {
			case r < 6:
				notifications.WithLabelValues("forwarded", app).Inc()
				upstream.Observe(0.01 + rand.ExpFloat64()*0.05)
			case r < 7:
				notifications.WithLabelValues("filtered", app).Inc()
			case r < 8:
				notifications.WithLabelValues("upstream_error", app).Inc()
				upstream.Observe(0.005 + rand.Float64()*0.02)
				pending++
			default:
				notifications.WithLabelValues("delivered_earlier", app).Inc()
			}
		}
		// Some refusals, mostly from nobody we know.
		notifications.WithLabelValues("bad_signature", "other").Inc()
		notifications.WithLabelValues("stale", apps[0]).Inc()
		notifications.WithLabelValues("bad_request", "other").Inc()
		if rand.IntN(4) == 0 {
			notifications.WithLabelValues("upstream_timeout", apps[1]).Inc()
			upstream.Observe(10)
		}
		// The outbox redelivers: one accepted, one more error.
		deliveries.WithLabelValues("error").Inc()
		if pending > 0 {
			deliveries.WithLabelValues("accepted").Inc()
			pending--
			delivered++
		}
		age += 0.5
		if pending == 0 {
			age = 0
		}
		entries.WithLabelValues("pending").Set(float64(pending))
		entries.WithLabelValues("delivered").Set(float64(delivered))
		entries.WithLabelValues("dead").Set(1)
		oldest.Set(age)
	}
	return srv.URL + "/metrics", drive
}
