package alipaynotify

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap/zapcore"
)

// A pooled outbox worker outlives the config that started it (see
// outboxWorkers), but the logs and the storage it was given belong to that
// config: on a reload Caddy closes the old config's log writers that the
// new one does not reuse, and cleans up its storage module (the redis
// storage closes its client). So the worker logs and stores through the
// newest config that uses it.

// followingCore is the core of a pooled worker's logger: it writes through
// the core of the newest config that uses the worker.
type followingCore struct {
	current *atomic.Pointer[zapcore.Core]
	fields  []zapcore.Field
}

func newFollowingCore(core zapcore.Core) *followingCore {
	c := &followingCore{current: new(atomic.Pointer[zapcore.Core])}
	c.follow(core)
	return c
}

// follow makes core the one written through.
func (c *followingCore) follow(core zapcore.Core) { c.current.Store(&core) }

func (c *followingCore) target() zapcore.Core {
	core := *c.current.Load()
	if len(c.fields) > 0 {
		core = core.With(c.fields)
	}
	return core
}

func (c *followingCore) Enabled(level zapcore.Level) bool { return (*c.current.Load()).Enabled(level) }

func (c *followingCore) With(fields []zapcore.Field) zapcore.Core {
	return &followingCore{current: c.current, fields: append(slices.Clip(c.fields), fields...)}
}

// Check asks the current core, which adds itself (so that its filters,
// e.g. a log's include/exclude, apply).
func (c *followingCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return c.target().Check(e, ce)
}

func (c *followingCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	return c.target().Write(e, fields)
}

func (c *followingCore) Sync() error { return (*c.current.Load()).Sync() }

// followingStorage is a pooled worker's storage when Caddy's configured
// storage is a module whose value lives and dies with its config (such as
// the redis storage): it works on the newest config's value. Every config
// that shares a worker has the same storage configuration (it is part of
// the worker's key), so they are the same data. A lock is released through
// the value that took it (the redis storage releases only its own locks).
// certmagic's FileStorage, which holds nothing but its path, is used as it
// is (the outbox fsyncs it and lists its folders itself).
type followingStorage struct {
	mu      sync.Mutex
	current certmagic.Storage
	locks   map[string]certmagic.Storage // lock name → the value that took it
}

func newFollowingStorage(s certmagic.Storage) *followingStorage {
	return &followingStorage{current: s, locks: make(map[string]certmagic.Storage)}
}

// follow makes s the storage worked on.
func (f *followingStorage) follow(s certmagic.Storage) {
	f.mu.Lock()
	f.current = s
	f.mu.Unlock()
}

func (f *followingStorage) get() certmagic.Storage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

func (f *followingStorage) Store(ctx context.Context, key string, value []byte) error {
	return f.get().Store(ctx, key, value)
}

func (f *followingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	return f.get().Load(ctx, key)
}

func (f *followingStorage) Delete(ctx context.Context, key string) error {
	return f.get().Delete(ctx, key)
}

func (f *followingStorage) Exists(ctx context.Context, key string) bool {
	return f.get().Exists(ctx, key)
}

func (f *followingStorage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	return f.get().List(ctx, path, recursive)
}

func (f *followingStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	return f.get().Stat(ctx, key)
}

func (f *followingStorage) Lock(ctx context.Context, name string) error {
	s := f.get()
	if err := s.Lock(ctx, name); err != nil {
		return err
	}
	f.took(name, s)
	return nil
}

// TryLock is the storage's TryLock, or its Lock bounded by ctx when it has
// none (which is how the outbox tries a storage without TryLock anyway).
func (f *followingStorage) TryLock(ctx context.Context, name string) (bool, error) {
	s := f.get()
	var ok bool
	var err error
	if tl, isTry := s.(certmagic.TryLocker); isTry {
		ok, err = tl.TryLock(ctx, name)
	} else {
		err = s.Lock(ctx, name)
		ok = err == nil
	}
	if ok {
		f.took(name, s)
	}
	return ok, err
}

func (f *followingStorage) took(name string, s certmagic.Storage) {
	f.mu.Lock()
	f.locks[name] = s
	f.mu.Unlock()
}

func (f *followingStorage) Unlock(ctx context.Context, name string) error {
	f.mu.Lock()
	s, ok := f.locks[name]
	delete(f.locks, name)
	if !ok {
		s = f.current
	}
	f.mu.Unlock()
	return s.Unlock(ctx, name)
}

// Interface guards.
var (
	_ certmagic.Storage   = (*followingStorage)(nil)
	_ certmagic.TryLocker = (*followingStorage)(nil)
	_ zapcore.Core        = (*followingCore)(nil)
)
