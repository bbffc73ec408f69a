// Package e2e tests the binary built from ./cmd/caddy as users run it: the
// caddy alipay-notify commands wired into Caddy, Caddy's own commands on
// the plugin's configuration, the demo, and the example receivers of
// examples/ behind the plugin. The commands themselves are tested in
// process in internal/cli.
package e2e
