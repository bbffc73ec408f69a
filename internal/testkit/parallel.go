package testkit

import (
	"runtime"
	"sync"
	"testing"
)

// Spread calls f(i) for every i from 0 to n-1, handed out in order to
// workers goroutines, and returns when every call has.
func Spread(workers, n int, f func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// Presign signs n genuine notifications (Genuine), the i-th with the
// notify_id id(i), on every CPU: RSA signing is the expensive part of
// preparing a load.
func Presign(t testing.TB, n int, id func(i int) string) []string {
	bodies := make([]string, n)
	Spread(runtime.NumCPU(), n, func(i int) { bodies[i] = Genuine(t, id(i)) })
	return bodies
}
