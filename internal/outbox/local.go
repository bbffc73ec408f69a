package outbox

import "sync"

// local tells the running Workers of this process about the writes that
// Stores of this process make, so that a replay through the admin API is
// delivered at once, and a Worker's index (its answer to Lookup, its gauges)
// follows its own process's changes without waiting for a scan. Other
// processes' changes reach a Worker through its scans.
var local = struct {
	sync.Mutex
	workers map[string]map[*Worker]struct{} // by namespace
}{workers: make(map[string]map[*Worker]struct{})}

func register(w *Worker) {
	local.Lock()
	defer local.Unlock()
	set := local.workers[w.ns]
	if set == nil {
		set = make(map[*Worker]struct{})
		local.workers[w.ns] = set
	}
	set[w] = struct{}{}
	censusDue()
}

func unregister(w *Worker) {
	local.Lock()
	defer local.Unlock()
	delete(local.workers[w.ns], w)
	if len(local.workers[w.ns]) == 0 {
		delete(local.workers, w.ns)
	}
	censusDue()
}

// notifyLocal reports that the entry at key in namespace ns is now e (nil:
// deleted).
func notifyLocal(ns, key string, e *Entry) {
	local.Lock()
	var ws []*Worker
	for w := range local.workers[ns] {
		ws = append(ws, w)
	}
	local.Unlock()
	for _, w := range ws {
		w.observe(key, e, true)
	}
}
