package monitoring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// liveRateInterval replaces $__rate_interval: Prometheus scrapes every
// second, so 15 s holds about 15 samples (Grafana makes it at least four
// scrape intervals).
const liveRateInterval = "15s"

// liveTimeout bounds the wait until every query returns data.
const liveTimeout = 30 * time.Second

// TestLive runs a real Prometheus that scrapes the target every second and
// evaluates alerts.yml every second, then asks it every dashboard query
// through the HTTP API: each must return at least one finite sample. It
// also checks that the target is up, that the app_id variable's
// label_values lists values, and that every alert rule evaluates cleanly.
func TestLive(t *testing.T) {
	prom := requireTool(t, "prometheus")
	d := loadDashboard(t)
	queries := dashboardQueries(t, d, liveRateInterval)
	varMetric, varLabel := appIDVariable(t, d)

	metricsURL, drive := startTarget(t)
	drive()
	api := startPrometheus(t, prom, metricsURL)

	checks := []struct {
		name string
		run  func() error
	}{
		{"target up", func() error { return api.expectValue(`up{job="alipay_notify"}`, 1) }},
		{"variable app_id: label_values(" + varMetric + ", " + varLabel + ")", func() error {
			return api.expectLabelValues(varLabel, varMetric)
		}},
		{"alerts.yml rules evaluate cleanly", api.expectRulesHealthy},
	}
	for _, q := range queries {
		checks = append(checks, struct {
			name string
			run  func() error
		}{q.Name + ": " + q.Expr, func() error { return api.expectData(q.Expr) }})
	}

	deadline := time.Now().Add(liveTimeout)
	for {
		drive()
		var failing []string
		for _, c := range checks {
			if err := c.run(); err != nil {
				failing = append(failing, c.name+"\n\t\t"+err.Error())
			}
		}
		if len(failing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d of %d checks still fail:\n\t%s\nprometheus log:\n%s",
				liveTimeout, len(failing), len(checks), strings.Join(failing, "\n\t"), api.log())
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("all %d checks pass (%d dashboard queries) against Prometheus at %s", len(checks), len(queries), api.base)
}

// promAPI talks to the Prometheus that startPrometheus started.
type promAPI struct {
	base   string // http://127.0.0.1:port
	client *http.Client
	logBuf *testkit.SyncBuffer
}

func (a *promAPI) log() string {
	s := a.logBuf.String()
	if len(s) > 4000 {
		s = "...\n" + s[len(s)-4000:]
	}
	return s
}

// startPrometheus starts prometheus on a free port of 127.0.0.1 with a 1 s
// scrape and evaluation interval, scraping metricsURL as job
// "alipay_notify" and loading alerts.yml, and waits until it is ready. It
// is stopped at cleanup (SIGTERM, then SIGKILL).
func startPrometheus(t *testing.T, prom, metricsURL string) *promAPI {
	t.Helper()
	target, err := url.Parse(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := filepath.Abs("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: alipay_notify
    scheme: %s
    metrics_path: %q
    static_configs:
      - targets: [%q]
`, rules, target.Scheme, target.Path, target.Host)
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}

	// The free port may be taken between finding it and prometheus binding
	// it: try again on another.
	for attempt := 1; ; attempt++ {
		api, err := tryPrometheus(t, prom, configFile, filepath.Join(dir, fmt.Sprintf("data%d", attempt)))
		if err == nil {
			return api
		}
		if attempt == 3 || !errors.Is(err, errAddressInUse) {
			t.Fatal(err)
		}
		t.Logf("prometheus: %v; trying another port", err)
	}
}

var errAddressInUse = errors.New("address already in use")

func tryPrometheus(t *testing.T, prom, configFile, dataDir string) (*promAPI, error) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logBuf := &testkit.SyncBuffer{}
	cmd := exec.Command(prom,
		"--config.file="+configFile,
		"--storage.tsdb.path="+dataDir,
		"--web.listen-address="+addr,
		"--log.level=info",
	)
	cmd.Stdout, cmd.Stderr = logBuf, logBuf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting prometheus: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		testkit.Stop(cmd, exited, syscall.SIGTERM, 10*time.Second)
	}

	api := &promAPI{base: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second}, logBuf: logBuf}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			stopped = true
			if strings.Contains(logBuf.String(), "address already in use") {
				return nil, fmt.Errorf("%s: %w", addr, errAddressInUse)
			}
			return nil, fmt.Errorf("prometheus exited before it was ready (%v):\n%s", cmd.ProcessState, api.log())
		default:
		}
		resp, err := api.client.Get(api.base + "/-/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Cleanup(stop)
				return api, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("prometheus not ready after 20s:\n%s", api.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePort finds a port of 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// get calls the HTTP API and decodes data from its success envelope.
func (a *promAPI) get(path string, params url.Values, data any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var envelope struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	if envelope.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, envelope.ErrorType, envelope.Error)
	}
	return json.Unmarshal(envelope.Data, data)
}

// instant evaluates expr now and returns its samples' values.
func (a *promAPI) instant(expr string) ([]float64, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := a.get("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector", data.ResultType)
	}
	values := make([]float64, 0, len(data.Result))
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("sample value %q: %w", s, err)
		}
		values = append(values, v)
	}
	return values, nil
}

// expectData wants at least one sample with a finite value: Grafana draws
// NaN (a quantile or a ratio of nothing) as no data.
func (a *promAPI) expectData(expr string) error {
	values, err := a.instant(expr)
	if err != nil {
		return err
	}
	if len(values) == 0 {
		return errors.New("empty result")
	}
	for _, v := range values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			return nil
		}
	}
	return fmt.Errorf("no finite value: %v", values)
}

func (a *promAPI) expectValue(expr string, want float64) error {
	values, err := a.instant(expr)
	if err != nil {
		return err
	}
	if len(values) != 1 || values[0] != want {
		return fmt.Errorf("%v, want [%v]", values, want)
	}
	return nil
}

// expectLabelValues does what Grafana does for label_values(metric, label).
func (a *promAPI) expectLabelValues(label, metric string) error {
	var values []string
	if err := a.get("/api/v1/label/"+label+"/values", url.Values{"match[]": {metric}}, &values); err != nil {
		return err
	}
	if !slices.Contains(values, "other") || len(values) < 2 {
		return fmt.Errorf("%v, want the configured app ids and other", values)
	}
	return nil
}

// expectRulesHealthy wants every rule of alerts.yml loaded and evaluated
// without error.
func (a *promAPI) expectRulesHealthy() error {
	var data struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := a.get("/api/v1/rules", url.Values{"type": {"alert"}}, &data); err != nil {
		return err
	}
	var problems []string
	n := 0
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				problems = append(problems, fmt.Sprintf("%s: health %q %s", r.Name, r.Health, r.LastError))
			}
		}
	}
	if n < 5 {
		problems = append(problems, fmt.Sprintf("%d alert rules loaded, want 5", n))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
