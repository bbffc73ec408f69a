package testkit

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"time"
)

// SyncBuffer is a bytes.Buffer safe for a process' output (or any other
// writer) and the test's reads at once.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Stop signals the started process cmd with sig, waits up to grace for it
// to exit (done is closed by whoever waits for it), and kills it after that,
// waiting for the exit again. A process that has exited already is left
// alone. Stop reports whether the process exited before the kill.
func Stop(cmd *exec.Cmd, done <-chan struct{}, sig os.Signal, grace time.Duration) bool {
	select {
	case <-done:
		return true
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return true
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
		return false
	}
}
