package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const (
	fwdA = "http://127.0.0.1:8080/hooks/alipay"
	fwdB = "http://127.0.0.1:9090/hooks/antom"
)

var ctx = context.Background()

func TestKeyName(t *testing.T) {
	for id, want := range map[string]string{
		"2019081500222155625035450570486459":  "2019081500222155625035450570486459",
		"ac05099524730693a8b330c5ecf72da9786": "ac05099524730693a8b330c5ecf72da9786",
		"antom_0123abcd":                      "antom_0123abcd",
		"AbC":                                 "~41b~43",
		"a.b/c~d":                             "a~2eb~2fc~7ed",
		"..":                                  "~2e~2e",
	} {
		if got := keyName(id); got != want {
			t.Errorf("keyName(%q) = %q, want %q", id, got, want)
		}
	}
	// Ids differing only in case stay apart (case-insensitive file systems).
	if keyName("abc") == keyName("ABC") {
		t.Error("abc and ABC share a key")
	}
	long := strings.Repeat("X", 128)
	k := keyName(long)
	if !strings.HasSuffix(k, ".sha256") || len(k) != 64+7 {
		t.Errorf("long id not hashed: %q", k)
	}
	if keyName(long+"Y") == k {
		t.Error("hashed names collide")
	}
	if ns, ok := splitEntryKey(entryKey(Namespace(fwdA), "x")); !ok || ns != Namespace(fwdA) {
		t.Errorf("splitEntryKey: %q %v", ns, ok)
	}
	if Namespace(fwdA) == Namespace(fwdB) || !validNamespace(Namespace(fwdA)) {
		t.Error("namespaces")
	}
}

func TestEntryEncodingIsExact(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("CST", 8*3600))
	for _, b := range [][]byte{
		body("x"),
		[]byte("{\"a\" : \"<&>\u2028\"}\n"), // whitespace, HTML characters, U+2028
		{0xff, 0xfe, '{', '}'},              // not UTF-8: stored as base64
		nil,
	} {
		e := fast().newEntry(fwdA, "id", "alipay.t", b, "boom", now)
		data, err := encodeEntry(&e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeEntry(data)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Body, b) {
			t.Errorf("body %q came back as %q", b, got.Body)
		}
		if !got.FirstFailure.Equal(now) || got.NextAttempt.Location() != time.UTC {
			t.Errorf("times: %v %v", got.FirstFailure, got.NextAttempt)
		}
	}
	for _, bad := range []string{`{`, `{"v":2,"id":"x","forward":"f","state":"pending"}`, `{"v":1,"id":"","forward":"f","state":"pending"}`, `{"v":1,"id":"x","forward":"f","state":"lost"}`} {
		if _, err := decodeEntry([]byte(bad)); err == nil {
			t.Errorf("decoded %s", bad)
		}
	}
}

func TestEntryJSONIsTheAdminObject(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := fast().newEntry(fwdA, "n1", "alipay.trade_status_sync", body("n1"), "upstream answered 502", now)
	var m map[string]any
	data, _ := json.Marshal(e)
	json.Unmarshal(data, &m)
	for _, k := range []string{"id", "state", "type", "attempts", "first_failure", "next_attempt", "last_error", "forward"} {
		if _, ok := m[k]; !ok {
			t.Errorf("pending entry JSON lacks %q: %s", k, data)
		}
	}
	if m["first_failure"] != "2026-01-02T03:04:05Z" || m["next_attempt"] != "2026-01-02T03:04:05.1Z" || m["state"] != "pending" {
		t.Errorf("JSON: %s", data)
	}
	e.accepted(now)
	data, _ = json.Marshal(e)
	m = nil
	json.Unmarshal(data, &m)
	if _, ok := m["next_attempt"]; ok {
		t.Errorf("delivered entry has next_attempt: %s", data)
	}
	var back Entry
	if err := json.Unmarshal(data, &back); err != nil || !bytes.Equal(back.Body, e.Body) || back.State != Delivered {
		t.Errorf("round trip: %v %+v", err, back)
	}
}

func TestScheduleFailed(t *testing.T) {
	s := Schedule{Retry: []time.Duration{5 * time.Second, 30 * time.Second, time.Minute}, GiveUp: 10 * time.Minute, Keep: time.Hour}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := s.newEntry(fwdA, "id", "t", nil, "e1", t0)
	if e.Attempts != 1 || e.WindowAttempts != 1 || !e.NextAttempt.Equal(t0.Add(5*time.Second)) || e.State != Pending {
		t.Fatalf("new entry: %+v", e)
	}
	now := e.NextAttempt
	var delays []time.Duration
	for e.State == Pending {
		s.failed(&e, "again", now)
		if e.State == Pending {
			delays = append(delays, e.NextAttempt.Sub(now))
			now = e.NextAttempt
		}
	}
	// 30s, then 1m repeated, the last capped at the deadline (t0+10m).
	want := []time.Duration{30 * time.Second, time.Minute, time.Minute, time.Minute, time.Minute, time.Minute, time.Minute, time.Minute, time.Minute, time.Minute, 25 * time.Second}
	if !slices.Equal(delays, want) {
		t.Errorf("delays %v, want %v", delays, want)
	}
	if !now.Equal(t0.Add(10*time.Minute)) || !e.DeadAt.Equal(now) || !e.NextAttempt.IsZero() {
		t.Errorf("dead at %v (deadline %v): %+v", e.DeadAt, t0.Add(10*time.Minute), e)
	}
	if e.Attempts != 2+len(want) {
		t.Errorf("attempts %d", e.Attempts)
	}
	// Dead stays dead and counts; replay gives a fresh window.
	s.failed(&e, "inline", now.Add(time.Hour))
	if e.State != Dead || e.Attempts != 3+len(want) || e.LastError != "inline" {
		t.Errorf("dead after failure: %+v", e)
	}
	r := now.Add(2 * time.Hour)
	e.replay(r)
	if e.State != Pending || !e.WindowStart.Equal(r) || e.WindowAttempts != 0 || !e.NextAttempt.Equal(r) || !e.DeadAt.IsZero() {
		t.Errorf("replayed: %+v", e)
	}
	s.failed(&e, "x", r)
	if !e.NextAttempt.Equal(r.Add(5 * time.Second)) {
		t.Errorf("replayed entry does not start the retry list over: %v", e.NextAttempt.Sub(r))
	}
	if s.Validate() != nil || (Schedule{}).Validate() == nil || (Schedule{Retry: []time.Duration{0}, GiveUp: 1, Keep: 1}).Validate() == nil {
		t.Error("Validate")
	}
	if d := (Schedule{}).WithDefaults(); !slices.Equal(d.Retry, DefaultRetry) || d.GiveUp != 7*24*time.Hour || d.Keep != 30*24*time.Hour {
		t.Errorf("defaults: %+v", d)
	}
}

func TestRecordFailure(t *testing.T) {
	s := fileStore(t, "")
	sched := Schedule{Retry: []time.Duration{5 * time.Second, 30 * time.Second}, GiveUp: time.Hour, Keep: time.Hour}
	t0 := time.Now().Truncate(time.Second)
	e, err := s.RecordFailure(ctx, sched, Failure{Forward: fwdA, ID: "n1", Type: "alipay.t", Body: body("n1"), Error: "upstream answered 502"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if e.Attempts != 1 || !e.FirstFailure.Equal(t0) || !e.NextAttempt.Equal(t0.Add(5*time.Second)) || e.State != Pending {
		t.Fatalf("first: %+v", e)
	}
	// Listed at once (before the handler answers fail).
	if l, _ := s.List(ctx, Filter{}); len(l) != 1 || l[0].ID != "n1" {
		t.Fatalf("list: %+v", l)
	}
	t1 := t0.Add(4 * time.Minute)
	e, _ = s.RecordFailure(ctx, sched, Failure{Forward: fwdA, ID: "n1", Type: "alipay.t", Body: []byte(`{"other":1}`), Error: "timeout"}, t1)
	got := mustGet(t, s, fwdA, "n1")
	if got.Attempts != 2 || !got.NextAttempt.Equal(t1.Add(30*time.Second)) || got.LastError != "timeout" || !bytes.Equal(got.Body, body("n1")) || !got.FirstFailure.Equal(t0) {
		t.Fatalf("second: %+v", got)
	}
	// Delivered: nothing written, the entry says so.
	if ok, err := s.MarkDelivered(ctx, fwdA, "n1", t1.Add(time.Minute)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	file := s.file.Filename(entryKey(Namespace(fwdA), "n1"))
	before, _ := os.ReadFile(file)
	e, err = s.RecordFailure(ctx, sched, Failure{Forward: fwdA, ID: "n1", Error: "late"}, t1.Add(2*time.Minute))
	after, _ := os.ReadFile(file)
	if err != nil || e.State != Delivered || e.Attempts != 3 || !bytes.Equal(before, after) {
		t.Fatalf("failure on delivered: %v %+v", err, e)
	}
	// Missing fields.
	if _, err := s.RecordFailure(ctx, sched, Failure{ID: "x"}, t0); err == nil {
		t.Error("no forward accepted")
	}
}

func TestMarkDelivered(t *testing.T) {
	s := fileStore(t, "")
	now := time.Now()
	if ok, err := s.MarkDelivered(ctx, fwdA, "none", now); ok || err != nil {
		t.Fatal(ok, err)
	}
	if l, _ := s.List(ctx, Filter{}); len(l) != 0 {
		t.Fatal("MarkDelivered of an unknown id wrote something")
	}
	s.RecordFailure(ctx, fast(), Failure{Forward: fwdA, ID: "p", Body: body("p"), Error: "e"}, now)
	if ok, err := s.MarkDelivered(ctx, fwdA, "p", now.Add(time.Second)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	e := mustGet(t, s, fwdA, "p")
	if e.State != Delivered || e.Attempts != 2 || !e.NextAttempt.IsZero() || !e.DeliveredAt.Equal(now.Add(time.Second)) {
		t.Fatalf("%+v", e)
	}
	if d, _ := s.Delivered(ctx, fwdA, "p"); !d {
		t.Error("Delivered false")
	}
	if d, _ := s.Delivered(ctx, fwdB, "p"); d {
		t.Error("Delivered true in another namespace")
	}
}

// Put returns only once the file holds the whole entry, and leaves no
// temporary file; the directory is fsynced (not observable without a crash,
// but it must not fail).
func TestPutIsDurable(t *testing.T) {
	dir := t.TempDir()
	s := fileStore(t, dir)
	for i := range 20 {
		e := fast().newEntry(fwdA, "id"+string(rune('a'+i)), "t", bytes.Repeat([]byte("x"), 10000*i), "e", time.Now())
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
		want, _ := encodeEntry(&e)
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(entryKey(Namespace(fwdA), e.ID))))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("after Put the file is not the entry: %v (%d of %d bytes)", err, len(got), len(want))
		}
	}
	names, _ := os.ReadDir(filepath.Join(dir, filepath.FromSlash(namespacePrefix(Namespace(fwdA)))))
	for _, n := range names {
		if !strings.HasSuffix(n.Name(), ".json") {
			t.Errorf("left behind: %s", n.Name())
		}
	}
	if len(names) != 20 {
		t.Errorf("%d files", len(names))
	}
	if err := s.Put(ctx, Entry{ID: "x"}); err == nil {
		t.Error("invalid entry stored")
	}
}

func TestListFiltersAndNamespaces(t *testing.T) {
	s := fileStore(t, "")
	t0 := time.Now().Add(-time.Hour)
	for i, c := range []struct {
		fwd, id string
		st      State
	}{{fwdA, "a1", Pending}, {fwdA, "a2", Delivered}, {fwdA, "a3", Dead}, {fwdB, "b1", Pending}, {fwdB, "a1", Dead}} {
		e := fast().newEntry(c.fwd, c.id, "t", body(c.id), "e", t0.Add(time.Duration(i)*time.Minute))
		switch c.st {
		case Delivered:
			e.accepted(t0)
		case Dead:
			e.die(t0)
		}
		if err := s.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(f Filter) []string {
		l, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range l {
			out = append(out, e.Forward[len(e.Forward)-5:]+":"+e.ID)
		}
		return out
	}
	for _, c := range []struct {
		f    Filter
		want []string
	}{
		{Filter{}, []string{"lipay:a1", "lipay:a2", "lipay:a3", "antom:b1", "antom:a1"}},
		{Filter{State: Pending}, []string{"lipay:a1", "antom:b1"}},
		{Filter{State: Dead}, []string{"lipay:a3", "antom:a1"}},
		{Filter{State: Delivered, Forward: fwdB}, nil},
		{Filter{Forward: fwdB}, []string{"antom:b1", "antom:a1"}},
		{Filter{Forward: "http://never.example/"}, nil},
	} {
		if got := ids(c.f); !slices.Equal(got, c.want) {
			t.Errorf("List(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
	if _, err := s.List(ctx, Filter{State: "lost"}); err == nil {
		t.Error("unknown state accepted")
	}
	if _, err := ParseState("lost"); err == nil {
		t.Error("ParseState")
	}
	// Get with and without the forward URL.
	if e, err := s.Get(ctx, fwdB, "a1"); err != nil || e.State != Dead {
		t.Errorf("Get: %v %+v", err, e)
	}
	if _, err := s.Get(ctx, "", "b1"); err != nil {
		t.Errorf("Get any: %v", err)
	}
	if _, err := s.Get(ctx, fwdA, "b1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get missing: %v", err)
	}
	// Empty storage: empty list, not an error.
	if l, err := fileStore(t, "").List(ctx, Filter{}); err != nil || l == nil || len(l) != 0 {
		t.Errorf("empty: %v %v", l, err)
	}
}

func TestDelete(t *testing.T) {
	s := fileStore(t, "")
	now := time.Now()
	for _, f := range []string{fwdA, fwdB} {
		for _, id := range []string{"x", "y"} {
			s.RecordFailure(ctx, fast(), Failure{Forward: f, ID: id, Body: body(id), Error: "e"}, now)
		}
	}
	if n, err := s.Delete(ctx, fwdA, "x"); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	if _, err := s.Get(ctx, fwdA, "x"); !errors.Is(err, ErrNotFound) {
		t.Error("still there")
	}
	if n, _ := s.Delete(ctx, fwdA, "x"); n != 0 {
		t.Error("deleted twice")
	}
	if n, _ := s.Delete(ctx, "", "y"); n != 2 {
		t.Errorf("delete in every namespace: %d", n)
	}
	l, _ := s.List(ctx, Filter{})
	if len(l) != 1 || l[0].ID != "x" || l[0].Forward != fwdB {
		t.Errorf("left: %+v", l)
	}
}

func TestReplay(t *testing.T) {
	s := fileStore(t, "")
	t0 := time.Now().Add(-time.Hour)
	mk := func(id string, st State) {
		e := fast().newEntry(fwdA, id, "t", body(id), "e", t0)
		if st == Dead {
			e.die(t0.Add(time.Minute))
		}
		if st == Delivered {
			e.accepted(t0.Add(time.Minute))
		}
		s.Put(ctx, e)
	}
	mk("p", Pending)
	mk("d1", Dead)
	mk("d2", Dead)
	mk("ok", Delivered)
	now := time.Now()
	if n, err := s.Replay(ctx, "", []string{"p", "ok", "unknown"}, now); n != 2 || err != nil {
		t.Fatal(n, err)
	}
	p := mustGet(t, s, fwdA, "p")
	if p.State != Pending || !p.NextAttempt.Equal(now) || !p.WindowStart.Equal(t0) {
		t.Errorf("replayed pending keeps its window: %+v", p)
	}
	ok := mustGet(t, s, fwdA, "ok")
	if ok.State != Pending || !ok.WindowStart.Equal(now) || !ok.DeliveredAt.IsZero() {
		t.Errorf("replayed delivered: %+v", ok)
	}
	if n, err := s.ReplayDead(ctx, "", now); n != 2 || err != nil {
		t.Fatal(n, err)
	}
	if l, _ := s.List(ctx, Filter{State: Dead}); len(l) != 0 {
		t.Errorf("dead left: %v", l)
	}
	d := mustGet(t, s, fwdA, "d1")
	if !d.WindowStart.Equal(now) || !d.NextAttempt.Equal(now) || d.Attempts != 1 || !d.FirstFailure.Equal(t0) {
		t.Errorf("replayed dead: %+v", d)
	}
}

// A value that is not an entry (a manual edit, a storage fault) is logged
// and skipped; it blocks nothing. A temporary file is ignored.
func TestCorruptEntrySkipped(t *testing.T) {
	dir := t.TempDir()
	core, logs := observer.New(zapcore.WarnLevel)
	fsto := &certmagic.FileStorage{Path: dir}
	s := NewStore(fsto, zap.New(core))
	now := time.Now()
	s.RecordFailure(ctx, fast(), Failure{Forward: fwdA, ID: "good", Body: body("good"), Error: "e"}, now)
	bad := entryKey(Namespace(fwdA), "bad")
	fsto.Store(ctx, bad, []byte(`{"v":1,"id":"bad","forw`))
	// An entry filed under the wrong key is as bad.
	wrong, _ := encodeEntry(&Entry{ID: "other", Forward: fwdA, State: Pending})
	fsto.Store(ctx, entryKey(Namespace(fwdA), "misfiled"), wrong)
	// What a crash mid-Store leaves: a temporary file next to the entries.
	os.WriteFile(filepath.Join(filepath.Dir(fsto.Filename(bad)), "123456789"), []byte("{"), 0o600)

	l, err := s.List(ctx, Filter{})
	if err != nil || len(l) != 1 || l[0].ID != "good" {
		t.Fatalf("list: %v %+v", err, l)
	}
	if n := logs.FilterMessage("outbox: skipping corrupt entry").Len(); n != 2 {
		t.Errorf("%d corrupt-entry lines", n)
	}
	var ce *CorruptError
	if _, err := s.Get(ctx, fwdA, "bad"); !errors.As(err, &ce) {
		t.Errorf("Get corrupt: %v", err)
	}

	up := newUpstream(t, "accept")
	w := startWorker(t, s, fwdA, fast(), newPoster(up.URL, 5*time.Second).deliver)
	eventually(t, 10*time.Second, "good delivered", func() bool { return stateOf(s, fwdA, "good") == Delivered })
	eventually(t, 5*time.Second, "corrupt counted", func() bool { st := w.Stats(); return st.Corrupt == 2 && st.Delivered == 1 })

	// A failure for the corrupt id replaces it.
	if e, err := w.RecordFailure(ctx, "bad", "t", body("bad"), "e"); err != nil || e.Attempts != 1 {
		t.Fatalf("replace corrupt: %v %+v", err, e)
	}
	eventually(t, 10*time.Second, "replaced entry delivered", func() bool { return stateOf(s, fwdA, "bad") == Delivered })
	// And the corrupt one can be dropped.
	if n, err := s.Delete(ctx, fwdA, "misfiled"); n != 1 || err != nil {
		t.Errorf("delete corrupt: %d %v", n, err)
	}
}

// Listing while other goroutines rewrite entries (each Store renames a
// temporary file over its entry) never loses entries: a short list would
// empty a Worker's index and its gauges.
func TestListDuringWrites(t *testing.T) {
	dir := t.TempDir()
	s := fileStore(t, dir)
	generic := NewStore(&countingStorage{fs: &certmagic.FileStorage{Path: dir}}, testLogger(t))
	const n = 50
	var entries []Entry
	for i := range n {
		e := fast().newEntry(fwdA, fmt.Sprint("n", i), "t", body(fmt.Sprint(i)), "e", time.Now())
		s.put(ctx, &e, false)
		entries = append(entries, e)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				e := entries[i%n]
				s.put(ctx, &e, false)
			}
		})
	}
	genericErrs := 0
	for range 300 {
		keys, _, err := s.listNamespace(ctx, Namespace(fwdA))
		if err != nil || len(keys) != n {
			t.Fatalf("FileStorage list: %d keys, %v", len(keys), err)
		}
		keys, _, err = generic.listNamespace(ctx, Namespace(fwdA))
		if err != nil {
			genericErrs++
		} else if len(keys) != n {
			t.Fatalf("generic list: %d keys", len(keys))
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("generic List failed (and said so) %d times of 300", genericErrs)
}

// A storage whose non-recursive List leaves out "directories" still lists
// every namespace.
func TestStorageWithoutDirectoryKeys(t *testing.T) {
	s := NewStore(&countingStorage{fs: &certmagic.FileStorage{Path: t.TempDir()}, noDirs: true}, testLogger(t))
	now := time.Now()
	for _, f := range []string{fwdA, fwdB} {
		if _, err := s.RecordFailure(ctx, fast(), Failure{Forward: f, ID: "x", Body: body("x"), Error: "e"}, now); err != nil {
			t.Fatal(err)
		}
	}
	if l, err := s.List(ctx, Filter{}); err != nil || len(l) != 2 {
		t.Fatalf("%v %+v", err, l)
	}
	if n, err := s.Replay(ctx, "", []string{"x"}, now); n != 2 || err != nil {
		t.Fatal(n, err)
	}
	if n, err := s.Delete(ctx, "", "x"); n != 2 || err != nil {
		t.Fatal(n, err)
	}
}

// The stored form: the body once, as a string when it is UTF-8 and as
// base64 otherwise; times in UTC; and a record written by the first
// version of this code (another field order) still reads.
func TestStoredRecord(t *testing.T) {
	at := time.Date(2026, 1, 2, 11, 4, 5, 0, time.FixedZone("CST", 8*3600))
	e := fast().newEntry(fwdA, "n1", "t", []byte(`{"a":"白"}`), "refused", at)
	data, err := encodeEntry(&e)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(data), `"body"`) != 1 || !strings.Contains(string(data), `"body":"{\"a\":\"白\"}"`) ||
		strings.Contains(string(data), "body_base64") || !strings.Contains(string(data), `"first_failure":"2026-01-02T03:04:05Z"`) {
		t.Errorf("stored as %s", data)
	}
	e.Body = []byte{0xff, 0xfe}
	if data, _ = encodeEntry(&e); strings.Contains(string(data), `"body"`) || !strings.Contains(string(data), `"body_base64":"//4="`) {
		t.Errorf("binary body stored as %s", data)
	}
	old := `{"v":1,"id":"n1","forward":"` + fwdA + `","state":"pending","type":"t","attempts":1,"window_attempts":1,` +
		`"first_failure":"2026-01-02T03:04:05Z","window_start":"2026-01-02T03:04:05Z","next_attempt":"2026-01-02T03:04:05.1Z",` +
		`"last_error":"refused","updated_at":"2026-01-02T03:04:05Z","body":"{}"}`
	got, err := decodeEntry([]byte(old))
	if err != nil || got.ID != "n1" || got.Forward != fwdA || got.State != Pending || got.Attempts != 1 || string(got.Body) != "{}" ||
		!got.FirstFailure.Equal(at) || got.LastError != "refused" {
		t.Errorf("old record read as %+v, %v", got, err)
	}
}
