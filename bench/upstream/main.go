// Command upstream is the fastest possible merchant backend for the load
// benchmark: it reads each POST's body and answers 204, on 127.0.0.1 only.
// GET /count answers the number of POSTs received so far, so that the load
// script can check what was forwarded (nothing, for forged notifications).
//
//	go run ./upstream -listen 127.0.0.1:18081
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18081", "address to listen on (loopback)")
	flag.Parse()
	host, _, err := net.SplitHostPort(*listen)
	if err != nil || !strings.HasPrefix(host, "127.") {
		log.Fatalf("upstream: -listen %q: want a 127.x.x.x address", *listen)
	}
	var posts atomic.Int64
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/count" {
			_, _ = io.WriteString(w, strconv.FormatInt(posts.Load(), 10))
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		posts.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})
	log.Printf("upstream listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, handler))
}
