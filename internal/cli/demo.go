package cli

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/spf13/cobra"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The demo runs the plugin for real: the embedded Caddyfile, a real Alipay
// notification and a forged copy, and an upstream that verifies webhooks
// with the official Standard Webhooks library. The notifications and the
// test public key are copies of testdata/vectors/trade-rsa2-production*.json
// and testdata/keys/alipay.pub.txt (go:embed cannot reach them from here);
// a test keeps them equal.
var (
	//go:embed demo/Caddyfile
	demoCaddyfile string
	//go:embed demo/trade-rsa2-production.json
	demoVector []byte
	//go:embed demo/trade-rsa2-production-tampered-amount.json
	demoForgedVector []byte
	//go:embed demo/alipay.pub.txt
	demoTestKey string
)

// demoSecret signs the demo's webhooks; it is public, like everything in the demo.
const demoSecret = "whsec_ZGVtby1vbmx5LXNlY3JldC1kby1ub3QtdXNlLTEyMzQ1"

func demoCommand() *cobra.Command {
	var listen, upstream string
	var once bool
	cmd := &cobra.Command{
		Use:   "demo [--listen <addr>] [--upstream <addr>] [--self-test]",
		Short: "Runs alipay_notify on an embedded demo configuration",
		Long: `Runs Caddy with alipay_notify on an embedded configuration (demo/Caddyfile),
in front of a demo upstream that verifies each webhook with the official
Standard Webhooks library and prints it. It then posts a real notification
signed by Alipay and a forged copy of it, prints the answers, and keeps
running so you can send your own (it prints the curl commands).

--self-test exits after the two posts: 0 when the real notification was
answered "success" and verified by the upstream, and the forged one was
refused.

The demo refuses to start when something already answers at --listen or
--upstream (another Caddy would share the port, and half of what you send
would reach it). It leaves nothing behind: Caddy's autosave.json is not
written (persist_config off), nor is Caddy's data directory, and the
temporary directory holding the notification bodies is removed when it
stops, Ctrl-C included.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), listen, upstream, once)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address of the alipay_notify site")
	cmd.Flags().StringVar(&upstream, "upstream", "127.0.0.1:8081", "address of the demo upstream")
	cmd.Flags().BoolVar(&once, "self-test", false, "exit after posting the two demo notifications")
	return cmd
}

// demoConfig fills the embedded Caddyfile in.
func demoConfig(listen, upstream string) (string, error) {
	var vec struct {
		Key struct {
			AlipayPublicKey string `json:"alipay_public_key"`
		} `json:"key"`
	}
	if err := json.Unmarshal(demoVector, &vec); err != nil {
		return "", err
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("--listen %q: want host:port", listen)
	}
	return strings.NewReplacer(
		"{{HOST}}", host,
		"{{LISTEN}}", listen,
		"{{UPSTREAM}}", upstream,
		"{{VECTOR_KEY}}", vec.Key.AlipayPublicKey,
		"{{TEST_KEY}}", strings.TrimSpace(demoTestKey),
		"{{SECRET}}", demoSecret,
	).Replace(demoCaddyfile), nil
}

func runDemo(ctx context.Context, out io.Writer, listen, upstreamAddr string, selfTestOnly bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// From the start, so that Ctrl-C at any point runs the cleanups below
	// (Caddy stopped, the temporary directory removed).
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	caddyfile, err := demoConfig(listen, upstreamAddr)
	if err != nil {
		return err
	}
	if listen == upstreamAddr {
		return fmt.Errorf("--listen and --upstream are both %s: give them different addresses", listen)
	}
	// Caddy listens with SO_REUSEPORT, so it would share the port with
	// another server (another Caddy) instead of failing, and half of what
	// is sent there would go to the other one: refuse to start instead.
	for _, a := range []struct{ addr, flag, what string }{{listen, "--listen", "the demo's alipay_notify site"}, {upstreamAddr, "--upstream", "the demo upstream"}} {
		if err := checkAddressFree(a.addr, a.flag, a.what); err != nil {
			return err
		}
	}

	dir, err := os.MkdirTemp("", "caddy-alipay-notify-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	received := make(chan string, 16)
	stopUpstream, err := startDemoUpstream(upstreamAddr, out, received)
	if err != nil {
		return err
	}
	defer stopUpstream()

	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "demo/Caddyfile"})
	if err != nil {
		return fmt.Errorf("adapting the demo Caddyfile: %w", err)
	}
	// The Caddyfile says persist_config off: the demo leaves Caddy's
	// autosave.json (caddy run --resume) alone.
	if err := caddy.Load(cfg, true); err != nil {
		return fmt.Errorf("starting Caddy: %w", err)
	}
	defer func() { _ = caddy.Stop() }()

	notifyURL := "http://" + listen + "/alipay/notify"
	fmt.Fprintf(out, "\ncaddy-alipay-notify demo\n  alipay_notify  %s\n  upstream       http://%s/hooks/alipay (verifies with the official Standard Webhooks library)\n\n", notifyURL, upstreamAddr)
	bodies, err := writeDemoBodies(dir)
	if err != nil {
		return err
	}
	realOK := demoPost(ctx, out, notifyURL, "real notification signed by Alipay", bodies[0], "success")
	var verified bool
	select {
	case id := <-received:
		verified = id == "2019081500222155624068450559358070"
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
		return nil
	}
	forgedOK := demoPost(ctx, out, notifyURL, "same notification, total_amount changed", bodies[1], "fail")
	if selfTestOnly {
		if !realOK || !verified || !forgedOK {
			return errors.New("demo self-test failed")
		}
		fmt.Fprintln(out, "\nself-test passed")
		return nil
	}
	fmt.Fprintf(out, "\nSend them yourself (the files are removed when the demo stops):\n  curl -i --data-binary @%s %s\n  curl -i --data-binary @%s %s\n\nCtrl-C stops the demo.\n", bodies[0], notifyURL, bodies[1], notifyURL)
	<-ctx.Done()
	return nil
}

// checkAddressFree fails when something already answers at addr.
func checkAddressFree(addr, flag, what string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil // nothing answers; a listen error, if any, comes later
	}
	conn.Close()
	return fmt.Errorf("%s already answers at %s, the address of %s: another program (another Caddy?) listens there and would get what is meant for the demo; stop it, or choose a free address with %s (e.g. %s 127.0.0.1:18080)", addr, addr, what, flag, flag)
}

// writeDemoBodies writes the two demo notification bodies into dir, where
// curl can read them.
func writeDemoBodies(dir string) ([2]string, error) {
	var paths [2]string
	for i, raw := range [][]byte{demoVector, demoForgedVector} {
		var vec struct {
			Name string `json:"name"`
			Body string `json:"body"`
		}
		if err := json.Unmarshal(raw, &vec); err != nil {
			return paths, err
		}
		paths[i] = filepath.Join(dir, vec.Name+".body")
		if err := os.WriteFile(paths[i], []byte(vec.Body), 0o644); err != nil {
			return paths, err
		}
	}
	return paths, nil
}

// demoPost posts one body from a file and reports whether the answer was want.
func demoPost(ctx context.Context, out io.Writer, url, what, path, want string) bool {
	body, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(out, "  %-42s -> %v\n", what, err)
		return false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		fmt.Fprintf(out, "  %-42s -> %v\n", what, err)
		return false
	}
	req.Header.Set("Content-Type", alipayPostContentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(out, "  %-42s -> %v\n", what, err)
		return false
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	fmt.Fprintf(out, "  %-42s -> %d %s\n", what, resp.StatusCode, answer)
	return string(answer) == want
}

// startDemoUpstream serves the demo upstream: it verifies each webhook with
// the official library, prints it and sends its id on received.
func startDemoUpstream(addr string, out io.Writer, received chan<- string) (func(), error) {
	wh, err := standardwebhooks.NewWebhook(demoSecret)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demo upstream: %w (choose another --upstream)", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		payload, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err := wh.Verify(payload, r.Header); err != nil {
			fmt.Fprintf(out, "  upstream: refused a webhook: %v\n", err)
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		id := r.Header.Get("webhook-id")
		fmt.Fprintf(out, "  upstream: webhook %s verified: %s\n", id, payload)
		select {
		case received <- id:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}
