package cluster

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/outbox"
	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// TestOutboxMoveOnRedis: on the storage a cluster shares, the entries of a
// forward URL that no Worker serves are counted (Unserved) and moved to a
// served one (Store.Move), whose Worker delivers the pending one; another
// instance's Store sees them in their new place.
func TestOutboxMoveOnRedis(t *testing.T) {
	t.Parallel()
	redisAddr := startRedis(t)
	const prefix = "move-test"
	ctx := context.Background()
	var delivered atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(up.Close)
	old, current := "http://127.0.0.1:1/gone", up.URL+"/hooks"

	a := outbox.NewStore(openStorage(t, redisAddr, prefix), nil)
	now := time.Now()
	sched := outbox.Schedule{Retry: []time.Duration{time.Hour}, GiveUp: 24 * time.Hour, Keep: 24 * time.Hour}
	if _, err := a.RecordFailure(ctx, sched, outbox.Failure{Forward: old, ID: "n1", Type: "t", Body: []byte(`{"id":"n1"}`), Error: "refused"}, now); err != nil {
		t.Fatal(err)
	}

	w, err := outbox.NewWorker(a, outbox.WorkerConfig{Forward: current, Schedule: sched, ScanInterval: 100 * time.Millisecond,
		Deliver: func(ctx context.Context, e outbox.Entry) outbox.Result {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.Forward, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return outbox.Failed(err)
			}
			resp.Body.Close()
			return outbox.Classify(resp.StatusCode, nil)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	testkit.Eventually(t, 10*time.Second, "the census of the old URL on Redis", func() bool {
		u := outbox.Unserved()
		return len(u) == 1 && u[0].Forward == old && u[0].Pending == 1
	})

	b := outbox.NewStore(openStorage(t, redisAddr, prefix), nil) // another instance's
	if n, err := b.Move(ctx, old, current, time.Now()); n != 1 || err != nil {
		t.Fatalf("moved %d: %v", n, err)
	}
	testkit.Eventually(t, 10*time.Second, "delivery of the moved entry", func() bool { return delivered.Load() == 1 })
	testkit.Eventually(t, 10*time.Second, "delivered as seen by the other instance", func() bool {
		st, _ := b.Lookup(ctx, current, "n1")
		return st == outbox.Delivered
	})
	if left, err := b.List(ctx, outbox.Filter{Forward: old}); len(left) != 0 || err != nil {
		t.Errorf("left under the old URL: %v %v", left, err)
	}
	testkit.Eventually(t, 10*time.Second, "an empty census", func() bool { return len(outbox.Unserved()) == 0 })
}
