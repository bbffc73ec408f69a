// Package integration runs the Caddy modules inside a real Caddy in the
// test process (caddytest), in front of real upstreams that check every
// webhook with the official Standard Webhooks library, and a real FastCGI
// responder and reverse-proxied backends behind the gate. The tests share
// caddytest's fixed ports (9080, admin 2999), so they never run in
// parallel; -short skips them, and CI never runs with -short.
package integration

import (
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-alipay/caddy-alipay-notify"
)
