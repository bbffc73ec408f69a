// Package outbox is the engine of the alipay_notify outbox (DESIGN §9): it
// keeps the webhooks the upstream did not accept in a certmagic.Storage
// (Caddy's ctx.Storage(): file_system by default, or a storage a cluster
// shares), redelivers them on a schedule, and answers the request path's
// question "did the outbox already deliver this one?". It knows nothing of
// HTTP handlers, Caddy modules, signing or metrics registries: the caller
// supplies a Deliver func and hooks.
//
// # Pieces
//
//   - Entry: one webhook (id, type, exact body) and its history.
//   - Store: the entries in a storage, for every handler (namespaced by
//     forward URL): Put, Get, List, Delete, Replay, ReplayDead,
//     RecordFailure, MarkDelivered, Lookup, Delivered, and Move, which
//     hands the entries of a forward URL a reload changed to a handler.
//   - Schedule: retry delays, give_up, keep.
//   - Worker: one handler's delivery loop on one instance (Start, Stop),
//     plus the handler's request-path calls (Lookup, RecordFailure,
//     MarkDelivered), which also work when the loop does not run.
//   - Unserved, ServedForward: the entries of forward URLs that no Worker
//     of this process serves (counted after every Worker start or stop and
//     every minute, logged at WARN), and the URLs that one does.
//   - Result, Classify: what a Deliver reports.
//
// # Storage layout
//
// One key per entry: alipay_notify/outbox/<ns>/<name>.json, where <ns> is
// Namespace(forward) (16 hex digits of SHA-256 of the forward URL) and
// <name> the webhook-id escaped so that it is one key component on every
// storage and case-insensitive file system ([a-z0-9_-] as is, any other
// byte ~XX; a name over 128 bytes becomes <sha256>.sha256). The value is
// JSON: the entry's fields plus a format version "v", the body as a JSON
// string when it is UTF-8 (exact: encoding/json round-trips it byte for
// byte), else base64. Keys without the .json suffix under a namespace are
// not entries (FileStorage's temporary files): ignored, and removed when an
// hour old. alipay_notify/outbox/<ns>.replayed changes at every replay.
// Entry locks are named alipay_notify_outbox_<hex>, hex only, because
// FileStorage lower-cases lock names and drops punctuation.
//
// # Durability and crashes
//
// certmagic's FileStorage.Store (v0.25.6) writes a temporary file in the
// entry's folder, fsyncs it, and renames it over the entry: atomic, the file
// durable, but not the rename, which lives in the folder. So on a
// *certmagic.FileStorage, Put, RecordFailure, Replay, Delete and Move also fsync
// the folder (and once per folder its parents up to the storage root)
// before they return: the entry is on disk before the handler answers
// Alipay fail. The Worker's own updates after a delivery and MarkDelivered
// do not fsync the folder: a crash can only lose such an update by keeping
// the previous version (the rename is atomic), which costs one more
// delivery, and the upstream deduplicates by webhook-id.
//
// A crash leaves nothing that blocks: a temporary file is not an entry; a
// value that does not decode (or sits under the wrong key) is logged once
// and skipped by scans and lists, RecordFailure replaces it, Delete removes
// it; a lock left by a crashed instance is taken over when the storage
// deems it stale (FileStorage: 10 s without a refresh; caddy-storage-redis:
// its 5 s TTL). FileStorage's TryLock never takes over an empty lock file (a
// crash between creating and writing it): an entry busy for 15 s is claimed
// with the blocking Lock (5 s at most), which does.
//
// FileStorage.List walks the folder and fails as a whole (with
// fs.ErrNotExist) when a temporary file vanishes between the directory read
// and its lstat, which every concurrent Store causes; the Store therefore
// reads FileStorage folders with os.ReadDir, and on other storages retries
// such an error and otherwise reports it, so that a scan never takes a
// failed listing for an empty outbox.
//
// Nothing else assumes FileStorage: every storage gets Store, Load, List
// (non-recursive), Delete, Exists, Stat and Lock/Unlock, and TryLock when it
// has it.
//
// # Delivery
//
// A Worker lists its namespace every ScanInterval (1 s by default, never
// more than 2 s) and keeps an index of its entries: a key not seen before
// is read at once; a known one is read again every 2 to 4 s when pending,
// every 30 to 60 s when delivered or dead (they change only by a replay,
// which writes the namespace's replay marker that every scan reads, and
// then every entry is read again; or by a removal, which the listing
// shows), at most 1000 such re-reads per scan. Due entries (pending, next
// attempt reached) go, in random order (so that instances rarely reach for
// the same one), to Concurrency delivery goroutines, each of which:
//
//  1. claims the entry's storage lock with TryLock (or Lock) bounded to
//     300 ms: a busy entry is skipped for a second, not waited on;
//  2. reads the entry again (another instance may have delivered or
//     rescheduled it) and goes on only if it is still pending and due;
//  3. calls Deliver;
//  4. reads the entry again, applies the result to it (accepted:
//     delivered; otherwise attempts+1, last_error, next attempt per the
//     schedule, or dead), and writes it;
//  5. logs one line (id, type, forward, result, status, attempts, state,
//     duration, error, next_attempt), calls OnDelivery, and unlocks.
//
// Stop cancels the Deliver calls in flight and waits for every goroutine.
// A cancelled delivery that did not come back accepted changes nothing (the
// entry stays pending with the same attempts and next attempt); one that
// came back accepted is recorded. So a stop or a reload neither loses nor
// double-counts; at worst an attempt that reached the upstream is made
// again.
//
// # Schedule
//
// retry lists the delay after the n-th attempt of a give_up window
// (Delay(n) = Retry[n-1], the last repeating); the inline attempt is the
// first, so the first outbox delivery comes Retry[0] after the failure. No
// attempt is scheduled past the window's end (first failure + give_up): the
// last one falls on it, and when that fails the entry is dead. A pending
// entry found more than a minute past the window's end (no instance ran
// then, or give_up was shortened by a reload) becomes dead without another
// attempt: no automatic delivery after give_up. A replay makes an entry
// pending with its next attempt now; a dead or delivered one also gets a
// fresh window (WindowStart, and the retry list starts over), a pending one
// keeps its window. keep counts from delivered_at or dead_at; expired
// entries are removed by the scan (every second, so "at least hourly"),
// after reading them once more.
//
// # The request path
//
// The happy path writes nothing. To know delivered_earlier, the handler
// calls Worker.Lookup (or Delivered) for every verified notification:
// while the Worker runs and its last listing is recent, an id it does not
// know costs a map lookup and no storage access (a wrong "none" is possible
// only for an entry written in the last few seconds and delivered already,
// i.e. a retry delay shorter than the scan interval; its cost is one more
// forward, which the upstream deduplicates); a known id is read from the
// storage (another instance may have delivered it). BenchmarkLookup, 1000
// entries, a shared 2-vCPU VM: 0.6-0.8 µs per unknown-id Lookup against
// 3-4.5 µs for a FileStorage Load (an open that fails); on a network
// storage the Load is a round trip. When the Worker does not run, Lookup
// reads the storage.
//
// RecordFailure and MarkDelivered do not take the entry's lock (the request
// path must not wait on a delivery in progress): each reads and writes back
// at once, and a race with a delivery costs at most an attempt count or one
// duplicate delivery, never an entry, because the Worker applies its result
// to the entry as it reads it after the delivery, and a delivered entry is
// never turned back by a failure.
//
// # Metrics
//
// OnStats gets, after every scan, the namespace's counts by state, the
// number of corrupt entries and the first failure of the oldest pending
// entry (Stats.OldestPendingAge gives the gauge); Worker.Stats returns the
// last snapshot, for a GaugeFunc. Since the storage is shared, every
// instance reports the whole cluster's entries of that handler: a change
// made by this instance shows at its next scan, a change by another
// instance within 5 s (pending entries) or at the next scan after a replay.
// OnDelivery gets every outbox attempt's Result (Outcome is the result
// label). Inline forwards are the handler's own to count.
package outbox
