package alipaynotify

import (
	"github.com/caddy-alipay/caddy-alipay-notify/internal/cli"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "alipay-notify",
		Usage: "<command>",
		Short: "Tools for alipay_notify: demo, test keys, signing, sending, verifying, the outbox",
		Long: `Tools that ship with the alipay_notify handler.

  caddy alipay-notify demo             runs the plugin on an embedded demo configuration
  caddy alipay-notify keygen           writes a test key pair that plays Alipay's key
  caddy alipay-notify webhook-secret   prints a fresh whsec_ secret for webhook_secret
  caddy alipay-notify sign             signs a test notification (or --antom) and prints it
  caddy alipay-notify send             signs a test notification and POSTs it like Alipay (or Antom)
  caddy alipay-notify verify           checks a captured notification and explains a failure
  caddy alipay-notify outbox           lists, replays and drops outbox entries (through the admin API)

"caddy alipay-notify <command> --help" describes each.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(cli.Commands()...)
		},
	})
}
