package outbox

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Defaults and bounds of a Worker.
const (
	// DefaultScanInterval is how often a Worker lists its namespace.
	DefaultScanInterval = time.Second
	// MaxScanInterval: DESIGN §9 wants a scan at least every 2 s.
	MaxScanInterval = 2 * time.Second
	// DefaultConcurrency is how many deliveries a Worker makes at once.
	DefaultConcurrency = 8
)

// Tuning that the contract fixes; tests shorten some.
const (
	// lockWait: how long a claim waits for an entry's lock. A busy entry
	// (another instance delivers it) is skipped, not waited on.
	lockWait = 300 * time.Millisecond
	// busyRetry: a skipped entry is not tried again before this.
	busyRetry = time.Second
	// forceLockAfter, forceLockWait: an entry busy for this long is claimed
	// with the storage's blocking Lock for up to forceLockWait. TryLock
	// alone may never take over some dead locks (FileStorage's TryLock
	// gives up on an empty lock file, which a crash between creating and
	// writing it leaves); Lock does, within the storage's stale time.
	forceLockAfter = 15 * time.Second
	forceLockWait  = 5 * time.Second
	// revalidatePending, revalidateDone: every entry is read again at
	// least this often (with jitter down to half), so that the changes
	// other instances make reach this Worker's index and gauges: pending
	// ones within 5 s together with the scan, delivered and dead ones
	// (which change only by a replay or a removal; a removal shows at the
	// next scan) within a minute.
	revalidatePending = 4 * time.Second
	revalidateDone    = time.Minute
	// maxRevalidations bounds the re-reads of known entries per scan; keys
	// not read yet are always read.
	maxRevalidations = 1000
	// strayAge, strayEvery: non-entry keys in a namespace (a temporary file
	// that a crash during a write left) are removed when older than
	// strayAge, checked every strayEvery.
	strayAge   = time.Hour
	strayEvery = time.Hour
	// scanErrorLogEvery: while scans keep failing, one line this often.
	scanErrorLogEvery = time.Minute
	// writeTimeout bounds the storage writes and unlocks after a delivery;
	// they run even while the Worker stops.
	writeTimeout = 10 * time.Second
)

// Stats is a snapshot of a Worker's namespace, as of its last scan. Since
// the storage is shared, it counts the whole cluster's entries of that
// handler.
type Stats struct {
	Forward   string
	Pending   int
	Dead      int
	Delivered int
	// Corrupt counts the entry keys that did not decode (not in the three).
	Corrupt int
	// OldestPending is the first failure of the oldest pending entry; zero
	// when none is pending.
	OldestPending time.Time
	// At is when the snapshot was taken; zero before the first scan.
	At time.Time
}

// OldestPendingAge is the age of the oldest pending entry at now, 0 when
// none is pending (caddy_alipay_notify_outbox_oldest_pending_seconds).
func (s Stats) OldestPendingAge(now time.Time) time.Duration {
	if s.OldestPending.IsZero() {
		return 0
	}
	return max(now.Sub(s.OldestPending), 0)
}

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// Forward is the handler's forward URL; it names the namespace.
	Forward string
	// Schedule is the handler's retry, give_up and keep; unset fields take
	// the defaults.
	Schedule Schedule
	// Deliver sends e (same webhook-id, type and body; a new
	// webhook-timestamp and signature) and reports the outcome. It must
	// honor ctx: Stop cancels it. Required by Start.
	Deliver func(ctx context.Context, e Entry) Result
	// Logger gets one line per outbox delivery and the storage errors;
	// nil: none.
	Logger *zap.Logger
	// OnStats, if set, is called after every scan (at most ScanInterval
	// apart) with the namespace's counts: for the gauges.
	OnStats func(Stats)
	// OnDelivery, if set, is called after every outbox delivery attempt
	// with the entry as updated and the result: for
	// deliveries_total{result}. Called from several goroutines at once.
	OnDelivery func(e Entry, r Result)
	// ScanInterval: how often the namespace is listed (default 1s; at
	// most 2s).
	ScanInterval time.Duration
	// Concurrency: deliveries at once (default 8).
	Concurrency int
}

// Worker is one handler's outbox on one instance: the loop that delivers its
// due entries (Start, Stop), and the handler's request-path calls
// (Lookup, RecordFailure, MarkDelivered), which also work when the loop is
// not running.
//
// The loop lists the namespace every ScanInterval and keeps an index of the
// entries (state, next attempt): a new key is read at once, a known one
// again at least every few seconds (pending) or every minute (delivered,
// dead), and a due one again under its lock. So a scan costs one List plus
// the reads of what is new or due, not a read of every entry. The index also
// answers Lookup for an id it does not know without touching the storage.
type Worker struct {
	store       *Store
	forward     string
	forwardLog  string // forward with any password redacted, for logs
	ns          string
	sched       Schedule
	deliver     func(ctx context.Context, e Entry) Result
	logger      *zap.Logger
	onStats     func(Stats)
	onDelivery  func(Entry, Result)
	scanEvery   time.Duration
	concurrency int

	// tuning, from the constants above; tests shorten them
	lockWait, busyRetry, forceLockAfter, forceLockWait time.Duration
	revalidatePending, revalidateDone                  time.Duration
	maxRevalidations                                   int
	strayAge, strayEvery                               time.Duration

	wake   chan struct{} // a scan now
	refill chan struct{} // a dispatch now (the queue runs low)
	work   chan job

	mu        sync.Mutex
	index     map[string]*slot
	gen       uint64    // bumped at the start of every List
	listedAt  time.Time // start of the last successful List; zero: cold
	stats     Stats
	lastStray time.Time
	// the loop's own (no lock): failed scans in a row, for the log
	scanFailures                    int
	scanFailingSince, scanErrLogged time.Time

	mark     string // the namespace's replay marker as last read
	markRead bool
	started  bool
	stopped  bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// slot is what the index knows of one key.
type slot struct {
	loaded       bool // state and times below are valid
	bad          bool // the value is corrupt
	state        State
	next         time.Time // pending: next attempt
	firstFailure time.Time
	windowStart  time.Time
	doneAt       time.Time // delivered, dead: since when
	checkAt      time.Time // read it again at or after this
	notBefore    time.Time // do not dispatch before (busy, storage error)
	busySince    time.Time // claims have failed since
	seen         uint64    // gen of the List (or local write) that last saw it
	inflight     bool      // queued or being processed
}

type jobKind uint8

const (
	jobDeliver jobKind = iota
	jobRemove
)

type job struct {
	key  string
	kind jobKind
}

// NewWorker returns the Worker of the handler forwarding to cfg.Forward.
func NewWorker(store *Store, cfg WorkerConfig) (*Worker, error) {
	if store == nil {
		return nil, errors.New("outbox: a worker needs a store")
	}
	if cfg.Forward == "" {
		return nil, errors.New("outbox: a worker needs the forward URL")
	}
	sched := cfg.Schedule.WithDefaults()
	if err := sched.Validate(); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	scan := cfg.ScanInterval
	if scan <= 0 {
		scan = DefaultScanInterval
	}
	scan = min(scan, MaxScanInterval)
	conc := cfg.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	return &Worker{
		store:             store,
		forward:           cfg.Forward,
		forwardLog:        RedactURL(cfg.Forward),
		ns:                Namespace(cfg.Forward),
		sched:             sched,
		deliver:           cfg.Deliver,
		logger:            logger,
		onStats:           cfg.OnStats,
		onDelivery:        cfg.OnDelivery,
		scanEvery:         scan,
		concurrency:       conc,
		lockWait:          lockWait,
		busyRetry:         busyRetry,
		forceLockAfter:    forceLockAfter,
		forceLockWait:     forceLockWait,
		revalidatePending: revalidatePending,
		revalidateDone:    revalidateDone,
		maxRevalidations:  maxRevalidations,
		strayAge:          strayAge,
		strayEvery:        strayEvery,
		wake:              make(chan struct{}, 1),
		refill:            make(chan struct{}, 1),
		work:              make(chan job, max(64, 8*conc)),
		index:             make(map[string]*slot),
	}, nil
}

// RedactURL hides the password of a URL's user information, for logs and
// the admin API; a URL without one is returned as it is.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// NamesForward reports whether given names the forward URL forward: the URL
// itself, or the same with its password redacted (as logs and the admin
// API show it).
func NamesForward(given, forward string) bool {
	return given == forward || given == RedactURL(forward)
}

// Forward is the handler's forward URL.
func (w *Worker) Forward() string { return w.forward }

// Schedule is the schedule in force (defaults filled in).
func (w *Worker) Schedule() Schedule { return w.sched }

// Store is the Worker's store.
func (w *Worker) Store() *Store { return w.store }

// Start runs the loop until Stop (or until ctx ends). A Worker starts once;
// a reload starts a new Worker and stops the old one.
func (w *Worker) Start(ctx context.Context) error {
	if w.deliver == nil {
		return errors.New("outbox: a worker needs a Deliver func to start")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return errors.New("outbox: worker already started")
	}
	w.started = true
	ctx, w.cancel = context.WithCancel(ctx)
	register(w)
	w.wg.Add(1)
	go w.loop(ctx)
	for range w.concurrency {
		w.wg.Add(1)
		go w.deliverer(ctx)
	}
	return nil
}

// Stop ends the loop and waits for its goroutines. A delivery in flight is
// cancelled through its ctx; if it still comes back accepted, the entry is
// marked delivered, otherwise it is left exactly as it was (pending, same
// attempts and next attempt), so nothing is lost and nothing counted twice.
// Stop is idempotent, and a no-op on a Worker never started.
func (w *Worker) Stop() {
	w.mu.Lock()
	if !w.started || w.stopped {
		w.mu.Unlock()
		return
	}
	w.stopped = true
	cancel := w.cancel
	w.mu.Unlock()

	cancel()
	w.wg.Wait()
	unregister(w)

	w.mu.Lock()
	w.listedAt = time.Time{}
	for _, sl := range w.index {
		sl.inflight = false
	}
	w.mu.Unlock()
}

// Stats is the snapshot of the last scan.
func (w *Worker) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Lookup returns the state of the entry id, "" when there is none. While the
// loop runs and its last List is recent, an id the index does not know
// costs no storage access: it has no entry, or one so new (written after
// that List, at most a few seconds ago) that it cannot have been delivered
// yet, except by a retry delay shorter than the scan interval, and then the
// cost of the wrong answer is one more forward, which the upstream
// deduplicates. An id the index knows is read from the storage (another
// instance may have delivered it).
func (w *Worker) Lookup(ctx context.Context, id string) (State, error) {
	key := entryKey(w.ns, id)
	w.mu.Lock()
	warm := w.started && !w.stopped && !w.listedAt.IsZero() && time.Since(w.listedAt) <= 3*w.scanEvery
	_, known := w.index[key]
	w.mu.Unlock()
	if warm && !known {
		return "", nil
	}
	return w.store.Lookup(ctx, w.forward, id)
}

// Delivered reports whether the outbox already delivered the entry id
// (outcome delivered_earlier: Alipay's retry is answered success without a
// forward). See Lookup for the cost.
func (w *Worker) Delivered(ctx context.Context, id string) (bool, error) {
	st, err := w.Lookup(ctx, id)
	return st == Delivered, err
}

// RecordFailure records a failed inline delivery now: Store.RecordFailure
// with this handler's forward URL and schedule.
func (w *Worker) RecordFailure(ctx context.Context, id, typ string, body []byte, errMsg string) (Entry, error) {
	return w.store.RecordFailure(ctx, w.sched, Failure{Forward: w.forward, ID: id, Type: typ, Body: body, Error: errMsg}, time.Now())
}

// MarkDelivered records an accepted inline delivery of the entry id now:
// Store.MarkDelivered with this handler's forward URL.
func (w *Worker) MarkDelivered(ctx context.Context, id string) (bool, error) {
	return w.store.MarkDelivered(ctx, w.forward, id, time.Now())
}

// observe records that the entry at key is now e (nil: gone). wakeIfDue
// starts a scan when e is due (a replay).
func (w *Worker) observe(key string, e *Entry, wakeIfDue bool) {
	now := time.Now()
	w.mu.Lock()
	if e == nil {
		delete(w.index, key)
		w.mu.Unlock()
		return
	}
	sl := w.index[key]
	if sl == nil {
		sl = &slot{}
		w.index[key] = sl
	}
	w.setSlot(sl, e, now)
	sl.seen = w.gen
	due := e.State == Pending && !e.NextAttempt.After(now)
	w.mu.Unlock()
	if due && wakeIfDue {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// setSlot copies what the index keeps of e; w.mu held.
func (w *Worker) setSlot(sl *slot, e *Entry, now time.Time) {
	sl.loaded, sl.bad = true, false
	sl.state = e.State
	sl.next = e.NextAttempt
	sl.firstFailure = e.FirstFailure
	sl.windowStart = e.WindowStart
	sl.doneAt = e.DoneAt()
	every := w.revalidateDone
	if e.State == Pending {
		every = w.revalidatePending
	}
	sl.checkAt = now.Add(jitter(every))
}

// jitter is a duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

func (w *Worker) loop(ctx context.Context) {
	defer w.wg.Done()
	ticker := time.NewTicker(w.scanEvery)
	defer ticker.Stop()
	w.scan(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			w.scan(ctx)
		case <-w.wake:
			w.scan(ctx)
		case <-w.refill:
			w.dispatch(time.Now())
		}
	}
}

// scan lists the namespace, reads what is new or due for revalidation,
// queues what is due, and publishes the stats.
func (w *Worker) scan(ctx context.Context) {
	start := time.Now()
	mark, markErr := w.store.replayMark(ctx, w.ns)
	w.mu.Lock()
	if markErr == nil {
		if w.markRead && mark != w.mark {
			// A replay somewhere in the cluster: read every entry
			// again (delivered and dead ones may be pending now).
			for _, sl := range w.index {
				sl.checkAt = time.Time{}
			}
		}
		w.mark, w.markRead = mark, true
	}
	w.gen++
	gen := w.gen
	w.mu.Unlock()

	keys, others, err := w.store.listNamespace(ctx, w.ns)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		w.scanFailed(err, start)
	} else {
		w.scanSucceeded(start)
		w.load(ctx, w.merge(keys, gen, start))
		if ctx.Err() != nil {
			return
		}
		w.sweepStrays(ctx, others, start)
	}
	now := time.Now()
	w.dispatch(now)
	stats := w.computeStats(now)
	if w.onStats != nil {
		w.onStats(stats)
	}
	w.maybeCensus(ctx, now)
}

// scanFailed logs a failed List: the first one, then one line a minute
// while they go on (a broken storage fails every scan, every second).
func (w *Worker) scanFailed(err error, now time.Time) {
	w.scanFailures++
	switch {
	case w.scanFailingSince.IsZero():
		w.scanFailingSince, w.scanErrLogged = now, now
		w.logger.Error("outbox: scan failed", zap.String("forward", w.forwardLog), zap.Error(err))
	case now.Sub(w.scanErrLogged) >= scanErrorLogEvery:
		w.scanErrLogged = now
		w.logger.Error("outbox: scans still failing", zap.String("forward", w.forwardLog),
			zap.Int("failures", w.scanFailures), zap.Time("since", w.scanFailingSince), zap.Error(err))
	}
}

// scanSucceeded logs the first successful List after failed ones.
func (w *Worker) scanSucceeded(now time.Time) {
	if w.scanFailingSince.IsZero() {
		return
	}
	w.logger.Info("outbox: scans work again", zap.String("forward", w.forwardLog),
		zap.Int("failures", w.scanFailures), zap.Duration("failing_for", now.Sub(w.scanFailingSince)))
	w.scanFailingSince, w.scanFailures = time.Time{}, 0
}

// merge folds a List (taken in generation gen, started at start) into the
// index and returns the keys to read: every key not read yet, and up to
// maxRevalidations of the others due for revalidation, longest due first
// (so that a large outbox costs a bounded number of reads per scan).
func (w *Worker) merge(keys []string, gen uint64, start time.Time) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var fresh, stale []string
	for _, k := range keys {
		sl := w.index[k]
		if sl == nil {
			sl = &slot{}
			w.index[k] = sl
		}
		sl.seen = gen
		switch {
		case sl.inflight || sl.checkAt.After(start):
		case sl.checkAt.IsZero():
			fresh = append(fresh, k)
		default:
			stale = append(stale, k)
		}
	}
	for k, sl := range w.index {
		// Gone from the storage, unless a local write added it after
		// the List began (seen == gen) or a delivery is on it.
		if sl.seen < gen && !sl.inflight {
			delete(w.index, k)
		}
	}
	if len(stale) > w.maxRevalidations {
		slices.SortFunc(stale, func(a, b string) int { return w.index[a].checkAt.Compare(w.index[b].checkAt) })
		stale = stale[:w.maxRevalidations]
	}
	w.listedAt = start
	return append(fresh, stale...)
}

// load reads keys into the index.
func (w *Worker) load(ctx context.Context, keys []string) {
	if len(keys) == 0 {
		return
	}
	results := w.store.loadAll(ctx, keys)
	now := time.Now()
	storageErrs := 0
	var firstErr error
	w.mu.Lock()
	defer func() {
		w.mu.Unlock()
		if storageErrs > 0 && ctx.Err() == nil {
			w.logger.Error("outbox: reading entries failed", zap.String("forward", w.forwardLog),
				zap.Int("entries", storageErrs), zap.Error(firstErr))
		}
	}()
	for _, l := range results {
		sl := w.index[l.key]
		if sl == nil || sl.inflight {
			continue
		}
		var corrupt *CorruptError
		switch {
		case l.err == nil:
			w.setSlot(sl, &l.entry, now)
		case errors.Is(l.err, ErrNotFound):
			delete(w.index, l.key)
		case errors.As(l.err, &corrupt):
			if !sl.bad {
				w.logger.Warn("outbox: skipping corrupt entry", zap.String("key", l.key), zap.Error(corrupt.Err))
			}
			sl.loaded, sl.bad = false, true
			sl.checkAt = now.Add(jitter(w.revalidateDone))
		default:
			storageErrs++
			if firstErr == nil {
				firstErr = l.err
			}
		}
	}
}

// sweepStrays removes the non-entry keys of the namespace older than
// strayAge, every strayEvery.
func (w *Worker) sweepStrays(ctx context.Context, others []string, now time.Time) {
	w.mu.Lock()
	due := now.Sub(w.lastStray) >= w.strayEvery
	if due {
		w.lastStray = now
	}
	w.mu.Unlock()
	if !due {
		return
	}
	for _, k := range others {
		info, err := w.store.storage.Stat(ctx, k)
		if err != nil || !info.IsTerminal || info.Modified.IsZero() || now.Sub(info.Modified) < w.strayAge {
			continue
		}
		if err := w.store.storage.Delete(ctx, k); err != nil {
			w.logger.Warn("outbox: removing stray key failed", zap.String("key", k), zap.Error(err))
			continue
		}
		w.logger.Info("outbox: removed stray key", zap.String("key", k), zap.Time("modified", info.Modified))
	}
}

// dispatch queues the due entries (and the ones to remove after keep), in
// random order, so that instances sharing a storage rarely reach for the
// same entry at once, as many as the queue takes; the rest wait for the
// next dispatch.
func (w *Worker) dispatch(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	var due []job
	for k, sl := range w.index {
		if !sl.loaded || sl.inflight || sl.notBefore.After(now) {
			continue
		}
		switch sl.state {
		case Pending:
			if !sl.next.After(now) || now.After(sl.windowStart.Add(w.sched.GiveUp+deadSlack)) {
				due = append(due, job{key: k, kind: jobDeliver})
			}
		case Delivered, Dead:
			if !sl.doneAt.IsZero() && now.Sub(sl.doneAt) >= w.sched.Keep {
				due = append(due, job{key: k, kind: jobRemove})
			}
		}
	}
	rand.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	for _, j := range due {
		select {
		case w.work <- j:
			w.index[j.key].inflight = true
		default:
			return
		}
	}
}

func (w *Worker) computeStats(now time.Time) Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := Stats{Forward: w.forward, At: now}
	for _, sl := range w.index {
		if sl.bad {
			s.Corrupt++
			continue
		}
		if sl.loaded {
			s.add(sl.state, sl.firstFailure)
		}
	}
	w.stats = s
	return s
}

func (w *Worker) deliverer(ctx context.Context) {
	defer w.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-w.work:
			switch j.kind {
			case jobDeliver:
				w.deliverOne(ctx, j.key)
			case jobRemove:
				w.removeOne(ctx, j.key)
			}
			w.mu.Lock()
			if sl := w.index[j.key]; sl != nil {
				sl.inflight = false
			}
			w.mu.Unlock()
			if len(w.work) < w.concurrency {
				select {
				case w.refill <- struct{}{}:
				default:
				}
			}
		}
	}
}

// holdOff keeps key from being dispatched for d.
func (w *Worker) holdOff(key string, d time.Duration) {
	w.mu.Lock()
	if sl := w.index[key]; sl != nil {
		sl.notBefore = time.Now().Add(d)
	}
	w.mu.Unlock()
}

// forget drops key from the index (it is gone from the storage).
func (w *Worker) forget(key string) {
	w.mu.Lock()
	delete(w.index, key)
	w.mu.Unlock()
}

// claim takes the lock of the entry at key without waiting on a busy one;
// ok false means busy (or a storage error, logged). release unlocks.
func (w *Worker) claim(ctx context.Context, key string) (release func(), ok bool) {
	name := lockName(key)
	now := time.Now()
	w.mu.Lock()
	var busySince time.Time
	if sl := w.index[key]; sl != nil {
		busySince = sl.busySince
	}
	w.mu.Unlock()
	force := !busySince.IsZero() && now.Sub(busySince) >= w.forceLockAfter
	wait := w.lockWait
	if force {
		wait = w.forceLockWait
	}
	lctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var err error
	if tl, isTry := w.store.storage.(certmagic.TryLocker); isTry && !force {
		ok, err = tl.TryLock(lctx, name)
	} else {
		err = w.store.storage.Lock(lctx, name)
		ok = err == nil
	}
	w.mu.Lock()
	if sl := w.index[key]; sl != nil {
		if ok {
			sl.busySince = time.Time{}
		} else {
			if sl.busySince.IsZero() {
				sl.busySince = now
			}
			sl.notBefore = time.Now().Add(w.busyRetry)
		}
	}
	w.mu.Unlock()
	if !ok {
		if err != nil && lctx.Err() == nil && ctx.Err() == nil {
			w.logger.Error("outbox: locking entry failed", zap.String("key", key), zap.Error(err))
		}
		return nil, false
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		defer cancel()
		if err := w.store.storage.Unlock(uctx, name); err != nil {
			w.logger.Error("outbox: unlocking entry failed", zap.String("key", key), zap.Error(err))
		}
	}, true
}

// deliverOne claims, re-reads, delivers and records one due entry.
func (w *Worker) deliverOne(ctx context.Context, key string) {
	release, ok := w.claim(ctx, key)
	if !ok {
		return
	}
	defer release()
	if ctx.Err() != nil {
		return
	}

	// Another instance may have delivered, rescheduled or removed it
	// since the index last saw it.
	e, err := w.store.load(ctx, key)
	if !w.loaded(ctx, key, err) {
		return
	}
	w.observe(key, &e, false)
	now := time.Now()
	if e.State != Pending {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if w.sched.expired(&e, now) {
		e.die(now)
		if err := w.store.put(wctx, &e, false); err != nil {
			w.logger.Error("outbox: recording give_up failed", zap.String("id", e.ID), zap.Error(err))
			w.holdOff(key, w.scanEvery)
			return
		}
		w.observe(key, &e, false)
		w.logger.Error("outbox: gave up on webhook without another attempt: its give_up window closed while no delivery ran",
			zap.String("id", e.ID), zap.String("forward", w.forwardLog), zap.Int("attempts", e.Attempts),
			zap.Time("first_failure", e.FirstFailure), zap.String("last_error", e.LastError))
		return
	}
	if e.NextAttempt.After(now) {
		return
	}

	start := time.Now()
	res := w.call(ctx, e)
	elapsed := time.Since(start)
	if res.Outcome != OutcomeAccepted && ctx.Err() != nil {
		// Stopped mid-delivery: abandoned, the entry stays as it was.
		w.logger.Debug("outbox: delivery abandoned by stop", zap.String("id", e.ID), zap.String("forward", w.forwardLog))
		return
	}

	// Apply the result to the entry as it is now (the request path may
	// have changed it during the delivery, without the lock).
	now = time.Now()
	latest, err := w.store.load(wctx, key)
	var corrupt *CorruptError
	switch {
	case err == nil:
		e = latest
	case errors.Is(err, ErrNotFound):
		// Dropped (admin DELETE) during the delivery: not recreated.
		w.forget(key)
		w.logDelivery(e, res, elapsed, false, "entry dropped during the delivery")
		w.report(e, res)
		return
	case errors.As(err, &corrupt):
		// Overwrite it with the entry as read before the delivery.
	default:
		w.logger.Error("outbox: re-reading entry after delivery failed", zap.String("id", e.ID), zap.Error(err))
	}
	var changed bool
	wasDelivered := e.State == Delivered
	if res.Outcome == OutcomeAccepted {
		changed = e.accepted(now)
	} else {
		changed = w.sched.failed(&e, res.errorText(), now)
	}
	if changed {
		// Not fsynced: should a crash lose this write, the entry is
		// attempted once more, which the upstream deduplicates.
		if err := w.store.put(wctx, &e, false); err != nil {
			w.logger.Error("outbox: recording delivery result failed", zap.String("id", e.ID),
				zap.String("result", string(res.Outcome)), zap.Error(err))
			w.holdOff(key, w.scanEvery)
		}
	}
	w.observe(key, &e, false)
	note := ""
	if wasDelivered {
		note = "already delivered by another attempt"
	}
	w.logDelivery(e, res, elapsed, changed, note)
	w.report(e, res)
}

// loaded handles the error of a Load of key; it reports whether e is usable.
func (w *Worker) loaded(ctx context.Context, key string, err error) bool {
	var corrupt *CorruptError
	switch {
	case err == nil:
		return true
	case errors.Is(err, ErrNotFound):
		w.forget(key)
	case errors.As(err, &corrupt):
		w.mu.Lock()
		if sl := w.index[key]; sl != nil {
			if !sl.bad {
				w.logger.Warn("outbox: skipping corrupt entry", zap.String("key", key), zap.Error(corrupt.Err))
			}
			sl.loaded, sl.bad = false, true
			sl.checkAt = time.Now().Add(jitter(w.revalidateDone))
		}
		w.mu.Unlock()
	default:
		if ctx.Err() == nil {
			w.logger.Error("outbox: reading entry failed", zap.String("key", key), zap.Error(err))
			w.holdOff(key, w.scanEvery)
		}
	}
	return false
}

// call runs Deliver, turning a panic or an unknown outcome into an error.
func (w *Worker) call(ctx context.Context, e Entry) (res Result) {
	defer func() {
		if r := recover(); r != nil {
			w.logger.Error("outbox: deliver panicked", zap.String("id", e.ID), zap.Any("panic", r),
				zap.ByteString("stack", debug.Stack()))
			res = Failed(fmt.Errorf("deliver panicked: %v", r))
		}
	}()
	res = w.deliver(ctx, e)
	if !res.valid() {
		res = Failed(fmt.Errorf("deliver returned unknown outcome %q", res.Outcome))
	}
	return res
}

// logDelivery writes the one line of an outbox delivery.
func (w *Worker) logDelivery(e Entry, res Result, elapsed time.Duration, written bool, note string) {
	level := zapcore.InfoLevel
	msg := "outbox delivery"
	switch {
	case res.Outcome == OutcomeAccepted:
	case e.State == Dead && written:
		level, msg = zapcore.ErrorLevel, "outbox delivery failed; gave up on webhook (give_up reached)"
	default:
		level = zapcore.WarnLevel
	}
	ce := w.logger.Check(level, msg)
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String("id", truncate(e.ID, 128)),
		zap.String("type", e.Type),
		zap.String("forward", w.forwardLog),
		zap.String("result", string(res.Outcome)),
		zap.Int("status", res.Status),
		zap.Int("attempts", e.Attempts),
		zap.String("state", string(e.State)),
		zap.Duration("duration", elapsed),
	}
	if res.Outcome != OutcomeAccepted {
		fields = append(fields, zap.String("error", res.errorText()))
	}
	if e.State == Pending {
		fields = append(fields, zap.Time("next_attempt", e.NextAttempt))
	}
	if note != "" {
		fields = append(fields, zap.String("note", note))
	}
	ce.Write(fields...)
}

func (w *Worker) report(e Entry, res Result) {
	if w.onDelivery != nil {
		w.onDelivery(e, res)
	}
}

// removeOne removes a delivered or dead entry whose keep has passed, after
// reading it again (a replay may have revived it).
func (w *Worker) removeOne(ctx context.Context, key string) {
	e, err := w.store.load(ctx, key)
	if !w.loaded(ctx, key, err) {
		return
	}
	now := time.Now()
	done := e.DoneAt()
	if e.State == Pending || done.IsZero() || now.Sub(done) < w.sched.Keep {
		w.observe(key, &e, false)
		return
	}
	if err := w.store.storage.Delete(ctx, key); err != nil {
		if ctx.Err() == nil {
			w.logger.Error("outbox: removing entry after keep failed", zap.String("key", key), zap.Error(err))
			w.holdOff(key, w.scanEvery)
		}
		return
	}
	w.forget(key)
	w.logger.Info("outbox: removed entry after keep", zap.String("id", truncate(e.ID, 128)),
		zap.String("forward", w.forwardLog), zap.String("state", string(e.State)), zap.Time("since", done))
}
