// Command upstream is the fastest possible merchant backend for the load
// benchmark: it reads each request's body and answers 204, on 127.0.0.1 only.
//
//	go run ./upstream -listen 127.0.0.1:18081
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18081", "address to listen on (loopback)")
	flag.Parse()
	host, _, err := net.SplitHostPort(*listen)
	if err != nil || !strings.HasPrefix(host, "127.") {
		log.Fatalf("upstream: -listen %q: want a 127.x.x.x address", *listen)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	})
	log.Printf("upstream listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, handler))
}
