// Command caddy is Caddy with the standard modules and alipay_notify, for the
// demo, the end-to-end tests and the benchmarks. Users build their own with
// xcaddy build --with github.com/caddy-alipay/caddy-alipay-notify.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-alipay/caddy-alipay-notify"
)

func main() { caddycmd.Main() }
