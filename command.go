package alipaynotify

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "alipay-notify",
		Usage: "<command>",
		Short: "Tools for alipay_notify: a demo",
		Long: `Tools that ship with the alipay_notify handler.

  caddy alipay-notify demo    runs the plugin on an embedded demo configuration`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(demoCommand())
		},
	})
}
