package outbox

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// A reload changed the handler's forward URL while entries were pending:
// the old namespace is counted and reported as unserved, Move hands its
// entries to the new handler, which delivers the pending one at once, and
// the old namespace is gone from the census.
func TestUnservedEntriesReportedAndMoved(t *testing.T) {
	s := fileStore(t, "")
	up := newUpstream(t, "accept")
	old := "http://hook:s3cret@127.0.0.1:1/gone" // the URL before the reload
	now := time.Now()
	sched := fast()
	pending := sched.newEntry(old, "p", "t", body("p"), "refused", now.Add(-time.Hour))
	dead := sched.newEntry(old, "d", "t", body("d"), "refused", now.Add(-time.Hour))
	dead.die(now.Add(-time.Minute))
	delivered := sched.newEntry(old, "ok", "t", body("ok"), "refused", now.Add(-time.Hour))
	delivered.accepted(now.Add(-time.Minute))
	both := sched.newEntry(old, "both", "t", body("both"), "refused", now.Add(-time.Hour))
	for _, e := range []Entry{pending, dead, delivered, both} {
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// Alipay's retry of "both" reached the new URL and was accepted there
	// after failing once: the new handler has its own, delivered, entry.
	mine := sched.newEntry(up.URL, "both", "t", body("both"), "refused", now)
	mine.accepted(now)
	s.Put(ctx, mine)

	core, logs := observer.New(zapcore.WarnLevel)
	startWorker(t, s, up.URL, sched, newPoster(up.URL, 5*time.Second).deliver,
		func(c *WorkerConfig) { c.Logger = zap.New(core) })
	eventually(t, 5*time.Second, "census of the old URL", func() bool { return len(Unserved()) == 1 })
	got := Unserved()[0]
	if got.Forward != old || got.Pending != 2 || got.Dead != 1 || got.Delivered != 1 || !got.OldestPending.Equal(pending.FirstFailure) {
		t.Errorf("census: %+v", got)
	}
	warned := logs.FilterMessageSnippet("no alipay_notify handler of this instance delivers to").All()
	if len(warned) != 1 {
		t.Fatalf("%d WARN lines about the old URL, want 1", len(warned))
	}
	fields := warned[0].ContextMap()
	if fields["forward"] != "http://hook:xxxxx@127.0.0.1:1/gone" || fields["pending"] != int64(2) || fields["dead"] != int64(1) ||
		!strings.Contains(fields["fix"].(string), "outbox move") {
		t.Errorf("WARN fields: %v", fields)
	}

	// Moved by the forward URL as the admin API lists it (password
	// redacted).
	if n, err := s.Move(ctx, "http://hook:xxxxx@127.0.0.1:1/gone", up.URL, time.Now()); n != 4 || err != nil {
		t.Fatalf("moved %d: %v", n, err)
	}
	eventually(t, 5*time.Second, "moved pending entry delivered", func() bool { return up.count("p") == 1 })
	if left, _ := s.List(ctx, Filter{Forward: old}); len(left) != 0 {
		t.Errorf("left in the old namespace: %+v", left)
	}
	if e := mustGet(t, s, up.URL, "d"); e.State != Dead || e.Attempts != dead.Attempts || e.Forward != up.URL {
		t.Errorf("dead entry moved as %+v", e)
	}
	if e := mustGet(t, s, up.URL, "ok"); e.State != Delivered || !e.DeliveredAt.Equal(delivered.DeliveredAt) {
		t.Errorf("delivered entry moved as %+v", e)
	}
	if e := mustGet(t, s, up.URL, "both"); !e.FirstFailure.Equal(mine.FirstFailure) || up.count("both") != 0 {
		t.Errorf("the new handler's own entry was replaced: %+v, delivered %d times", e, up.count("both"))
	}
	eventually(t, 5*time.Second, "census without the old URL", func() bool { return len(Unserved()) == 0 })

	// Moving again finds nothing; a move needs both URLs.
	if n, err := s.Move(ctx, old, up.URL, time.Now()); n != 0 || err != nil {
		t.Errorf("second move: %d %v", n, err)
	}
	if _, err := s.Move(ctx, "", up.URL, time.Now()); err == nil {
		t.Error("a move without a from URL")
	}
}

// A crash between writing the new entry and deleting the old one leaves
// both; the next Move only deletes the old one.
func TestMoveFinishesAnInterruptedMove(t *testing.T) {
	s := fileStore(t, "")
	now := time.Now()
	e := fast().newEntry(fwdA, "p", "t", body("p"), "refused", now)
	s.Put(ctx, e)
	copied := e
	copied.Forward = fwdB
	s.Put(ctx, copied)
	if n, err := s.Move(ctx, fwdA, fwdB, now); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	if all, _ := s.List(ctx, Filter{}); len(all) != 1 || all[0].Forward != fwdB {
		t.Errorf("after the move: %+v", all)
	}
}

// ServedForward knows the running Workers' forward URLs, also as shown with
// the password redacted.
func TestServedForward(t *testing.T) {
	s := fileStore(t, "")
	withPassword := "http://hook:s3cret@127.0.0.1:1/new"
	if _, ok := ServedForward(withPassword); ok {
		t.Fatal("served before its Worker started")
	}
	startWorker(t, s, withPassword, fast(), newPoster(withPassword, time.Second).deliver)
	for _, given := range []string{withPassword, "http://hook:xxxxx@127.0.0.1:1/new"} {
		if got, ok := ServedForward(given); !ok || got != withPassword {
			t.Errorf("ServedForward(%q) = %q, %v", given, got, ok)
		}
	}
	if _, ok := ServedForward(fwdA); ok {
		t.Error("an unknown URL is served")
	}
}
