package cli

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

func keygenCommand() *cobra.Command {
	var dir, prefix string
	var force bool
	cmd := &cobra.Command{
		Use:   "keygen [--dir <directory>] [--prefix <name>] [--force]",
		Short: "Writes a test RSA-2048 key pair that plays Alipay's key",
		Long: `Writes a new RSA-2048 key pair for local testing, in the forms the tools and
the plugin use:

  <prefix>.key.pem   the private key (PKCS#8 PEM): signs test notifications
                     with caddy alipay-notify sign/send --key
  <prefix>.pub.txt   the public key as one line of base64, the form Alipay's
                     open platform console shows: for alipay_public_key
  <prefix>.pub.pem   the same public key as a PEM block

The pair plays Alipay's key in a test configuration. It protects nothing:
never configure it for a real app, where alipay_public_key must be the key
that Alipay's console shows (支付宝公钥).

Existing files are never overwritten, unless --force.`,
		Example: `  caddy alipay-notify keygen
  caddy alipay-notify keygen --dir /tmp/alipay-test --prefix sandbox
  caddy alipay-notify keygen --force`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if prefix == "" || strings.ContainsAny(prefix, `/\`) {
				return fmt.Errorf("--prefix %q: want a file name prefix without a directory (use --dir)", prefix)
			}
			paths := [3]string{
				filepath.Join(dir, prefix+".key.pem"),
				filepath.Join(dir, prefix+".pub.txt"),
				filepath.Join(dir, prefix+".pub.pem"),
			}
			if !force {
				for _, path := range paths {
					if _, err := os.Lstat(path); err == nil {
						return fmt.Errorf("%s already exists: not overwriting it (--force overwrites, --dir or --prefix writes elsewhere)", path)
					} else if !errors.Is(err, fs.ErrNotExist) {
						return err
					}
				}
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("--dir: %w", err)
			}
			key, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				return err
			}
			private, err := x509.MarshalPKCS8PrivateKey(key)
			if err != nil {
				return err
			}
			public, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
			if err != nil {
				return err
			}
			contents := [3][]byte{
				pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: private}),
				[]byte(base64.StdEncoding.EncodeToString(public) + "\n"),
				pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: public}),
			}
			modes := [3]os.FileMode{0o600, 0o644, 0o644}
			for i, path := range paths {
				if err := os.WriteFile(path, contents[i], modes[i]); err != nil {
					return err
				}
			}
			pubPath, err := filepath.Abs(paths[1])
			if err != nil {
				pubPath = paths[1]
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, `Wrote a test key pair (RSA-2048, for local testing only):
  %-28s private key, PKCS#8 PEM: signs test notifications (sign/send --key)
  %-28s public key, one line of base64 as Alipay's console shows it
  %-28s the same public key, PEM

Configure the public key in a test alipay_notify:
	alipay_public_key %s

Then sign and send test notifications with the private key:
	caddy alipay-notify send --key %s --app-id <one of your app_id> http://127.0.0.1:8080/alipay/notify out_trade_no=order-1 total_amount=0.01
`, paths[0], paths[1], paths[2], pubPath, paths[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "directory to write the files in (created if missing)")
	cmd.Flags().StringVar(&prefix, "prefix", "alipay-test", "file name prefix")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite existing files")
	return cmd
}

func webhookSecretCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "webhook-secret",
		Short: "Prints a fresh Standard Webhooks secret (whsec_...)",
		Long: `Prints a new random Standard Webhooks secret: "whsec_" and the standard
base64 of 32 random bytes. Give the same value to the plugin (webhook_secret,
e.g. through {env.ALIPAY_WEBHOOK_SECRET}) and to the upstream that verifies
the webhooks.`,
		Example: `  caddy alipay-notify webhook-secret
  export ALIPAY_WEBHOOK_SECRET=$(caddy alipay-notify webhook-secret)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret, err := newWebhookSecret()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), secret)
			return nil
		},
	}
}

func newWebhookSecret() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(key), nil
}
