package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// ErrNotFound: no entry has that id (in that namespace).
var ErrNotFound = errors.New("outbox: no such entry")

// CorruptError is a stored value under an entry key that does not decode to
// a valid entry (a manual edit, a storage fault). Such an entry is logged and
// skipped by lists and scans; RecordFailure overwrites it, Delete removes it.
type CorruptError struct {
	Key string
	Err error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("outbox: corrupt entry %s: %v", e.Key, e.Err)
}
func (e *CorruptError) Unwrap() error { return e.Err }

// parallelLoads bounds the concurrent Loads of a list or a scan (a network
// storage answers each Load in a round trip).
const parallelLoads = 8

// Store is the outbox in a certmagic.Storage (Caddy's ctx.Storage()). One
// Store serves every handler: the methods take the forward URL that names a
// handler's namespace, or "" where noted for every namespace (the admin API,
// which knows ids but not handlers). It is safe for concurrent use, and
// several Stores (instances of a cluster) may share one storage.
//
// Concurrency: the Worker claims an entry with the storage's lock before it
// delivers it. The request-path and admin methods (RecordFailure,
// MarkDelivered, Replay, Delete) do not lock: each reads the entry and
// writes it back at once, so a race with a delivery can cost an attempt
// count or cause one duplicate delivery, never an entry.
type Store struct {
	storage certmagic.Storage
	logger  *zap.Logger
	// file is set when storage is certmagic's FileStorage: Put then also
	// fsyncs the entry's directory (FileStorage fsyncs the file and renames
	// it into place, but does not fsync the directory that records the
	// rename).
	file   *certmagic.FileStorage
	synced sync.Map // directories whose ancestors have been fsynced once
}

// NewStore returns the outbox over storage. logger (nil: none) gets one
// line per corrupt entry met and per storage error it swallows.
func NewStore(storage certmagic.Storage, logger *zap.Logger) *Store {
	if logger == nil {
		logger = zap.NewNop()
	}
	s := &Store{storage: storage, logger: logger}
	if fsto, ok := storage.(*certmagic.FileStorage); ok {
		s.file = fsto
	}
	return s
}

// Storage is the storage the Store works on.
func (s *Store) Storage() certmagic.Storage { return s.storage }

// Failure is one failed inline delivery, as the handler reports it.
type Failure struct {
	Forward string // the handler's forward URL
	ID      string // webhook-id
	Type    string // webhook type
	Body    []byte // the exact body sent
	Error   string // why it failed (last_error)
}

// Filter selects entries for List: State "" is every state, Forward "" every
// namespace.
type Filter struct {
	State   State
	Forward string
}

// Put stores e (in the namespace of e.Forward) atomically and durably: it
// returns once the entry is on the storage, and on certmagic's FileStorage
// once the file and its directory are fsynced. A crash during Put leaves the
// previous value (or none), never a partial one.
func (s *Store) Put(ctx context.Context, e Entry) error {
	return s.put(ctx, &e, true)
}

func (s *Store) put(ctx context.Context, e *Entry, durable bool) error {
	if err := e.validate(); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	data, err := encodeEntry(e)
	if err != nil {
		return fmt.Errorf("outbox: encoding entry %s: %w", e.ID, err)
	}
	ns := Namespace(e.Forward)
	key := entryKey(ns, e.ID)
	if err := s.storage.Store(ctx, key, data); err != nil {
		return fmt.Errorf("outbox: storing %s: %w", key, err)
	}
	if durable {
		if err := s.syncDir(key); err != nil {
			return fmt.Errorf("outbox: storing %s: %w", key, err)
		}
	}
	notifyLocal(ns, key, e)
	return nil
}

// syncDir fsyncs the directory of key on a FileStorage, and the first time
// for a directory also its ancestors up to the storage root, which
// FileStorage may just have created.
func (s *Store) syncDir(key string) error {
	if s.file == nil || runtime.GOOS == "windows" {
		return nil
	}
	dir := filepath.Dir(s.file.Filename(key))
	if err := fsyncDir(dir); err != nil {
		return err
	}
	if _, done := s.synced.Load(dir); done {
		return nil
	}
	root := filepath.Clean(s.file.Path)
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		if err := fsyncDir(d); err != nil {
			return err
		}
		if d == root || filepath.Dir(d) == d {
			break
		}
	}
	s.synced.Store(dir, struct{}{})
	return nil
}

func fsyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// load reads the entry at key: ErrNotFound when there is none, a
// *CorruptError when what is there is not a valid entry for that key.
func (s *Store) load(ctx context.Context, key string) (Entry, error) {
	data, err := s.storage.Load(ctx, key)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Entry{}, ErrNotFound
		}
		return Entry{}, fmt.Errorf("outbox: loading %s: %w", key, err)
	}
	e, err := decodeEntry(data)
	if err != nil {
		return Entry{}, &CorruptError{Key: key, Err: err}
	}
	if want := entryKey(Namespace(e.Forward), e.ID); want != key {
		return Entry{}, &CorruptError{Key: key, Err: fmt.Errorf("entry %q of %s belongs at %s", e.ID, e.Forward, want)}
	}
	return e, nil
}

// listNamespace lists the keys in namespace ns: the entry keys, and the
// others (what a crash mid-write left behind).
func (s *Store) listNamespace(ctx context.Context, ns string) (entries, others []string, err error) {
	prefix := namespacePrefix(ns)
	keys, err := s.list(ctx, prefix)
	if err != nil {
		return nil, nil, err
	}
	for _, k := range keys {
		if kns, ok := splitEntryKey(k); ok && kns == ns {
			entries = append(entries, k)
		} else if path.Dir(k) == prefix {
			others = append(others, k)
		}
	}
	return entries, others, nil
}

// namespaces lists the namespaces that hold (or held) entries.
func (s *Store) namespaces(ctx context.Context) ([]string, error) {
	keys, err := s.list(ctx, KeyPrefix)
	if err != nil {
		return nil, err
	}
	var nss []string
	for _, k := range keys {
		if ns := path.Base(k); path.Dir(k) == KeyPrefix && validNamespace(ns) {
			nss = append(nss, ns)
		}
	}
	if len(nss) == 0 && s.file == nil {
		// A storage whose non-recursive List leaves out "directories":
		// take the namespaces from the entry keys.
		all, err := s.storage.List(ctx, KeyPrefix, true)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("outbox: listing %s: %w", KeyPrefix, err)
		}
		for _, k := range all {
			if ns, ok := splitEntryKey(k); ok {
				nss = append(nss, ns)
			}
		}
	}
	slices.Sort(nss)
	return slices.Compact(nss), nil
}

// list lists the keys directly under prefix; none when prefix does not
// exist.
//
// On FileStorage it reads the directory itself: FileStorage.List walks it
// and fails as a whole with fs.ErrNotExist when a name vanishes between
// reading the directory and its lstat, which is what every concurrent
// Store does to its temporary file (it renames it over the entry). That
// would read as an empty namespace. Other storages: List, and an
// ErrNotExist while the prefix exists is retried, then an error.
func (s *Store) list(ctx context.Context, prefix string) ([]string, error) {
	if s.file != nil {
		des, err := os.ReadDir(s.file.Filename(prefix))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil
			}
			return nil, fmt.Errorf("outbox: listing %s: %w", prefix, err)
		}
		keys := make([]string, 0, len(des))
		for _, de := range des {
			keys = append(keys, path.Join(prefix, de.Name()))
		}
		return keys, nil
	}
	for attempt := 1; ; attempt++ {
		keys, err := s.storage.List(ctx, prefix, false)
		if err == nil {
			return keys, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("outbox: listing %s: %w", prefix, err)
		}
		if !s.storage.Exists(ctx, prefix) {
			return nil, nil
		}
		if attempt == 3 || ctx.Err() != nil {
			return nil, fmt.Errorf("outbox: listing %s: %w", prefix, err)
		}
	}
}

// keysFor are the keys where the entry id may be: in the namespace of
// forward, or in every namespace when forward is "".
func (s *Store) keysFor(ctx context.Context, forward, id string) ([]string, error) {
	if forward != "" {
		return []string{entryKey(Namespace(forward), id)}, nil
	}
	nss, err := s.namespaces(ctx)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(nss))
	for i, ns := range nss {
		keys[i] = entryKey(ns, id)
	}
	return keys, nil
}

type loaded struct {
	key   string
	entry Entry
	err   error
}

// loadAll loads keys, parallelLoads at a time.
func (s *Store) loadAll(ctx context.Context, keys []string) []loaded {
	out := make([]loaded, len(keys))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(parallelLoads, len(keys)) {
		wg.Go(func() {
			for i := range next {
				e, err := s.load(ctx, keys[i])
				out[i] = loaded{key: keys[i], entry: e, err: err}
			}
		})
	}
	for i := range keys {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// Get returns the entry id of the handler forwarding to forward; with
// forward "", the first found in any namespace. ErrNotFound when there is
// none; a *CorruptError when it cannot be read.
func (s *Store) Get(ctx context.Context, forward, id string) (Entry, error) {
	keys, err := s.keysFor(ctx, forward, id)
	if err != nil {
		return Entry{}, err
	}
	for _, key := range keys {
		e, err := s.load(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		return e, err
	}
	return Entry{}, ErrNotFound
}

// List returns the entries that f selects, oldest first failure first (then
// by forward URL and id). Corrupt entries are logged and left out; an entry
// deleted while listing is left out.
func (s *Store) List(ctx context.Context, f Filter) ([]Entry, error) {
	if f.State != "" && !f.State.Valid() {
		return nil, fmt.Errorf("outbox: unknown state %q", f.State)
	}
	var nss []string
	if f.Forward != "" {
		nss = []string{Namespace(f.Forward)}
	} else {
		var err error
		if nss, err = s.namespaces(ctx); err != nil {
			return nil, err
		}
	}
	var keys []string
	for _, ns := range nss {
		ks, _, err := s.listNamespace(ctx, ns)
		if err != nil {
			return nil, err
		}
		keys = append(keys, ks...)
	}
	out := []Entry{}
	for _, l := range s.loadAll(ctx, keys) {
		var corrupt *CorruptError
		switch {
		case l.err == nil:
			if f.State == "" || l.entry.State == f.State {
				out = append(out, l.entry)
			}
		case errors.Is(l.err, ErrNotFound):
		case errors.As(l.err, &corrupt):
			s.logger.Warn("outbox: skipping corrupt entry", zap.String("key", l.key), zap.Error(corrupt.Err))
		default:
			return nil, l.err
		}
	}
	slices.SortFunc(out, func(a, b Entry) int {
		return cmp.Or(a.FirstFailure.Compare(b.FirstFailure), cmp.Compare(a.Forward, b.Forward), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Delete removes the entry id of the handler forwarding to forward (with
// forward "", from every namespace), corrupt or not, and returns how many it
// removed (0: there was none). On FileStorage the removal is fsynced.
func (s *Store) Delete(ctx context.Context, forward, id string) (int, error) {
	keys, err := s.keysFor(ctx, forward, id)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, key := range keys {
		if !s.storage.Exists(ctx, key) {
			continue
		}
		if err := s.storage.Delete(ctx, key); err != nil {
			return n, fmt.Errorf("outbox: deleting %s: %w", key, err)
		}
		if err := s.syncDir(key); err != nil {
			s.logger.Warn("outbox: deleted entry may reappear after a crash", zap.String("key", key), zap.Error(err))
		}
		n++
		ns, _ := splitEntryKey(key)
		notifyLocal(ns, key, nil)
	}
	if n > 0 {
		censusDue() // an unserved entry may be gone
	}
	return n, nil
}

// Replay makes the entries ids (of the handler forwarding to forward; with
// forward "", in every namespace) pending with their next attempt at now;
// a dead or delivered one gets a fresh give_up window. It returns how many
// entries it replayed; unknown ids are not counted, corrupt ones are logged
// and skipped. A Worker of this process for the namespace delivers them at
// once; other instances' Workers at their next scan (Replay changes a
// marker key that every scan reads).
func (s *Store) Replay(ctx context.Context, forward string, ids []string, now time.Time) (int, error) {
	n := 0
	touched := map[string]bool{}
	defer func() { s.announceReplay(ctx, touched) }()
	for _, id := range ids {
		keys, err := s.keysFor(ctx, forward, id)
		if err != nil {
			return n, err
		}
		for _, key := range keys {
			e, err := s.load(ctx, key)
			var corrupt *CorruptError
			switch {
			case errors.Is(err, ErrNotFound):
				continue
			case errors.As(err, &corrupt):
				s.logger.Warn("outbox: cannot replay corrupt entry", zap.String("key", key), zap.Error(corrupt.Err))
				continue
			case err != nil:
				return n, err
			}
			e.replay(now)
			if err := s.put(ctx, &e, true); err != nil {
				return n, err
			}
			touched[Namespace(e.Forward)] = true
			n++
		}
	}
	return n, nil
}

// announceReplay changes the replay marker of the namespaces touched, so
// that other instances' Workers notice the replayed entries at their next
// scan. A failure is logged: they notice within a minute anyway.
func (s *Store) announceReplay(ctx context.Context, touched map[string]bool) {
	if len(touched) == 0 {
		return
	}
	mark := []byte(fmt.Sprintf("%d-%d", time.Now().UnixNano(), rand.Uint64()))
	for ns := range touched {
		if err := s.storage.Store(context.WithoutCancel(ctx), replayKey(ns), mark); err != nil {
			s.logger.Warn("outbox: announcing a replay failed; other instances see it within a minute", zap.String("key", replayKey(ns)), zap.Error(err))
		}
	}
}

// replayMark is the current replay marker of namespace ns ("" when none).
func (s *Store) replayMark(ctx context.Context, ns string) (string, error) {
	b, err := s.storage.Load(ctx, replayKey(ns))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return string(b), err
}

// ReplayDead replays every dead entry (of the handler forwarding to
// forward; with forward "", of every handler), as Replay does.
func (s *Store) ReplayDead(ctx context.Context, forward string, now time.Time) (int, error) {
	dead, err := s.List(ctx, Filter{State: Dead, Forward: forward})
	if err != nil {
		return 0, err
	}
	n := 0
	touched := map[string]bool{}
	defer func() { s.announceReplay(ctx, touched) }()
	for i := range dead {
		e := &dead[i]
		e.replay(now)
		if err := s.put(ctx, e, true); err != nil {
			return n, err
		}
		touched[Namespace(e.Forward)] = true
		n++
	}
	return n, nil
}

// RecordFailure records a failed inline delivery at now, before the handler
// answers Alipay fail, durably (see Put):
//
//   - no entry: a new pending one, attempts 1, first_failure now, next
//     attempt now + sched's first delay;
//   - a pending entry: attempts + 1, last_error, next attempt per sched
//     (dead when its give_up window has closed);
//   - a dead entry: attempts + 1 and last_error; it stays dead (give_up is
//     the operator's word; a replay revives it);
//   - a delivered entry (another instance's outbox delivered it between the
//     handler's lookup and this failure): left unchanged, nothing written;
//     the returned entry's State says Delivered, and the handler may answer
//     as for delivered_earlier;
//   - a corrupt entry: logged and replaced by a new one.
//
// The body and type of an existing entry are kept (the same webhook).
func (s *Store) RecordFailure(ctx context.Context, sched Schedule, f Failure, now time.Time) (Entry, error) {
	if f.ID == "" || f.Forward == "" {
		return Entry{}, errors.New("outbox: a failure needs an id and a forward URL")
	}
	if err := sched.Validate(); err != nil {
		return Entry{}, fmt.Errorf("outbox: %w", err)
	}
	key := entryKey(Namespace(f.Forward), f.ID)
	msg := truncate(f.Error, maxErrorText)
	e, err := s.load(ctx, key)
	var corrupt *CorruptError
	switch {
	case err == nil:
		if !sched.failed(&e, msg, now) {
			return e, nil
		}
	case errors.Is(err, ErrNotFound):
		e = sched.newEntry(f.Forward, f.ID, f.Type, f.Body, msg, now)
	case errors.As(err, &corrupt):
		s.logger.Warn("outbox: replacing corrupt entry", zap.String("key", key), zap.Error(corrupt.Err))
		e = sched.newEntry(f.Forward, f.ID, f.Type, f.Body, msg, now)
	default:
		return Entry{}, err
	}
	if err := s.put(ctx, &e, true); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// MarkDelivered records that the upstream accepted an inline delivery of
// the entry id at now (Alipay's retry of a notification still pending or
// dead in the outbox). It reports whether there is such an entry; with none,
// or one already delivered, it writes nothing. The inline attempt counts.
func (s *Store) MarkDelivered(ctx context.Context, forward, id string, now time.Time) (bool, error) {
	key := entryKey(Namespace(forward), id)
	e, err := s.load(ctx, key)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		return false, err
	}
	if !e.accepted(now) {
		return true, nil
	}
	// Not fsynced: if a crash loses this write, the entry is delivered
	// once more, which the upstream deduplicates.
	return true, s.put(ctx, &e, false)
}

// Lookup returns the state of the entry id of the handler forwarding to
// forward, "" when there is none: one storage Load. A corrupt entry is ""
// with a *CorruptError.
func (s *Store) Lookup(ctx context.Context, forward, id string) (State, error) {
	e, err := s.load(ctx, entryKey(Namespace(forward), id))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return "", nil
		}
		return "", err
	}
	return e.State, nil
}

// Delivered reports whether the outbox holds the entry id as delivered.
func (s *Store) Delivered(ctx context.Context, forward, id string) (bool, error) {
	st, err := s.Lookup(ctx, forward, id)
	return st == Delivered, err
}
