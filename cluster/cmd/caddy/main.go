// Command caddy is Caddy with the standard modules, alipay_notify and the
// redis storage module (github.com/pberkel/caddy-storage-redis), for the
// cluster tests: several instances sharing one storage. It lives in its own
// module so that the redis storage stays out of the plugin's go.mod.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/pberkel/caddy-storage-redis"

	_ "github.com/caddy-alipay/caddy-alipay-notify"
)

func main() { caddycmd.Main() }
