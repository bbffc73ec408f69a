package alipaynotify

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// A pooled worker's storage follows the newest config's, and a lock is
// released through the storage value that took it (the redis storage
// releases only its own locks; here two FileStorages stand for two
// configs' values, each with its own lock folder).
func TestFollowingStorage(t *testing.T) {
	ctx := context.Background()
	older, newer := &certmagic.FileStorage{Path: t.TempDir()}, &certmagic.FileStorage{Path: t.TempDir()}
	f := newFollowingStorage(older)
	if ok, err := f.TryLock(ctx, "entry"); !ok || err != nil {
		t.Fatalf("TryLock: %v %v", ok, err)
	}
	f.follow(newer)
	if err := f.Store(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if !newer.Exists(ctx, "k") || older.Exists(ctx, "k") {
		t.Fatal("a Store after follow did not go to the newer storage")
	}
	if err := f.Unlock(ctx, "entry"); err != nil {
		t.Fatalf("Unlock through the storage that took the lock: %v", err)
	}
	if locks, _ := filepath.Glob(filepath.Join(older.Path, "locks", "*")); len(locks) != 0 {
		t.Fatalf("the lock taken through the older storage is still there: %v", locks)
	}
	if err := f.Lock(ctx, "entry"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(newer.Path, "locks")); err != nil {
		t.Fatalf("a Lock after follow did not go to the newer storage: %v", err)
	}
	if err := f.Unlock(ctx, "entry"); err != nil {
		t.Fatal(err)
	}
}

// A pooled worker's logger writes through the newest config's core, with
// its name and fields.
func TestFollowingCore(t *testing.T) {
	var first, second bytes.Buffer
	core := func(b *bytes.Buffer, level zapcore.Level) zapcore.Core {
		return zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(b), level)
	}
	c := newFollowingCore(core(&first, zapcore.InfoLevel))
	logger := zap.New(c).Named("http.handlers.alipay_notify.outbox").With(zap.String("forward", "http://x"))
	logger.Info("one")
	c.follow(core(&second, zapcore.WarnLevel))
	logger.Info("filtered by the new core's level")
	logger.Warn("two")
	if !strings.Contains(first.String(), `"msg":"one"`) || strings.Contains(first.String(), "two") {
		t.Errorf("first core got %s", first.String())
	}
	if got := second.String(); !strings.Contains(got, `"msg":"two"`) || !strings.Contains(got, `"forward":"http://x"`) ||
		!strings.Contains(got, `"logger":"http.handlers.alipay_notify.outbox"`) || strings.Contains(got, "filtered") {
		t.Errorf("second core got %s", got)
	}
}
