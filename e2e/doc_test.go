// Package e2e tests the Caddy binary built from ./cmd/caddy, as users run
// it: real processes, real upstreams, real clients over TCP.
package e2e
