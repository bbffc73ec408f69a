package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/outbox"
)

// The admin API of the outbox (module admin.api.alipay_notify).
const (
	outboxPath       = "/alipay_notify/outbox"
	outboxReplayPath = outboxPath + "/replay"
	outboxMovePath   = outboxPath + "/move"
)

// adminTimeout bounds one call to the admin API.
const adminTimeout = 30 * time.Second

// adminOptions are the flags that find the admin API, as caddy reload and
// caddy stop take them.
type adminOptions struct {
	address string
	config  string
	adapter string
}

func (o *adminOptions) addFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&o.address, "address", "", "address of Caddy's admin API (default: from --config, else CADDY_ADMIN, else "+caddy.DefaultAdminListen+")")
	f.StringVarP(&o.config, "config", "c", "", "configuration file to read the admin address from, if --address is not used")
	f.StringVarP(&o.adapter, "adapter", "a", "", "name of the adapter of --config (e.g. caddyfile)")
}

// client resolves the admin address exactly as caddy reload does.
func (o *adminOptions) client() (*adminClient, error) {
	if o.adapter != "" && o.config == "" {
		return nil, errors.New("--adapter applies to --config: give the configuration file too")
	}
	addr, err := caddycmd.DetermineAdminAPIAddress(o.address, nil, o.config, o.adapter)
	if err != nil {
		return nil, fmt.Errorf("finding the admin address: %w", err)
	}
	return newAdminClient(addr)
}

func outboxCommand() *cobra.Command {
	var admin adminOptions
	cmd := &cobra.Command{
		Use:   "outbox <list | replay | drop | move> [--address <host:port>]",
		Short: "Lists, replays, drops and moves the outbox's entries through Caddy's admin API",
		Long: `Steers the outbox of a running Caddy (alipay_notify's outbox block) through
its admin API, the way caddy reload talks to it:

  list     the entries (id, state, type, attempts, first failure, next
           attempt, last error), every handler's; --json prints the API's
           JSON array as it is
  replay   makes entries pending with their next attempt now (a dead one
           gets a fresh give_up window): by id, or every dead one (--dead)
  drop     removes an entry
  move     hands the entries of a forward URL that no handler delivers to
           any more (a reload changed it) to a handler's outbox

The admin address is --address, else the admin address of --config, else
the CADDY_ADMIN environment variable, else ` + caddy.DefaultAdminListen + `: the same rule as
caddy reload and caddy stop. A configuration with "admin off" has no admin
API to talk to.

An error of the admin API is printed with its message; the exit status is
then non-zero.`,
		Example: `  caddy alipay-notify outbox list
  caddy alipay-notify outbox list --state dead --address localhost:2019
  caddy alipay-notify outbox list --json | jq -r '.[] | select(.attempts > 3) | .id'
  caddy alipay-notify outbox replay 2019081500222155624068450559358070
  caddy alipay-notify outbox replay --dead
  caddy alipay-notify outbox drop 2019081500222155624068450559358070
  caddy alipay-notify outbox move --from http://10.0.0.7:8080/alipay --to http://10.0.0.8:8080/alipay`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	admin.addFlags(cmd)
	cmd.AddCommand(outboxListCommand(&admin), outboxReplayCommand(&admin), outboxDropCommand(&admin), outboxMoveCommand(&admin))
	return cmd
}

func outboxListCommand(admin *adminOptions) *cobra.Command {
	var state string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--state pending|dead|delivered] [--json]",
		Short: "Lists the outbox's entries",
		Long: `Lists the outbox's entries, every alipay_notify handler's, as a table: id
(the webhook-id), state, type, attempts, first failure, next attempt (pending
entries only) and last error, times in the local time zone; a forward column
too when the entries belong to several handlers. --json prints the admin
API's JSON array as it is (no webhook body: payment details stay in the
storage).`,
		Example: `  caddy alipay-notify outbox list
  caddy alipay-notify outbox list --state pending
  caddy alipay-notify outbox list --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := outbox.ParseState(state)
			if err != nil {
				return fmt.Errorf("--state: %w", err)
			}
			c, err := admin.client()
			if err != nil {
				return err
			}
			uri := outboxPath
			if st != "" {
				uri += "?state=" + url.QueryEscape(string(st))
			}
			data, err := c.call(cmd.Context(), http.MethodGet, uri, nil)
			if err != nil {
				return err
			}
			var entries []outbox.Entry
			if err := json.Unmarshal(data, &entries); err != nil {
				return fmt.Errorf("the admin API at %s answered something that is not a list of entries (%v): %s", c.addr, err, shorten(string(data)))
			}
			out := cmd.OutOrStdout()
			if asJSON {
				_, err := out.Write(data)
				return err
			}
			printEntries(out, entries, st, time.Now())
			return nil
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only entries in this state: pending, dead or delivered")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the admin API's JSON array as it is")
	return cmd
}

// printEntries prints entries as a table.
func printEntries(out io.Writer, entries []outbox.Entry, state outbox.State, now time.Time) {
	if len(entries) == 0 {
		what := "entries"
		if state != "" {
			what = string(state) + " entries"
		}
		fmt.Fprintf(out, "The outbox has no %s.\n", what)
		return
	}
	forwards := map[string]bool{}
	for _, e := range entries {
		forwards[e.Forward] = true
	}
	withForward := len(forwards) > 1
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	header := []string{"ID", "STATE", "TYPE", "ATTEMPTS", "FIRST FAILURE", "NEXT ATTEMPT"}
	if withForward {
		header = append(header, "FORWARD")
	}
	fmt.Fprintln(tw, strings.Join(append(header, "LAST ERROR"), "\t"))
	for _, e := range entries {
		row := []string{cell(e.ID), cell(string(e.State)), cell(e.Type), fmt.Sprint(e.Attempts), formatTime(e.FirstFailure), nextAttempt(e, now)}
		if withForward {
			row = append(row, cell(e.Forward))
		}
		fmt.Fprintln(tw, strings.Join(append(row, cell(e.LastError)), "\t"))
	}
	_ = tw.Flush()
	counts := map[outbox.State]int{}
	for _, e := range entries {
		counts[e.State]++
	}
	var parts []string
	for _, s := range []outbox.State{outbox.Pending, outbox.Dead, outbox.Delivered} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	fmt.Fprintf(out, "%d %s: %s\n", len(entries), plural(len(entries), "entry", "entries"), strings.Join(parts, ", "))
}

// cell makes a value safe for one table cell: no tabs nor line breaks,
// "-" for nothing.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// nextAttempt shows when a pending entry is delivered next: the time, and
// "(due)" once it is reached.
func nextAttempt(e outbox.Entry, now time.Time) string {
	if e.State != outbox.Pending || e.NextAttempt.IsZero() {
		return "-"
	}
	s := formatTime(e.NextAttempt)
	if !e.NextAttempt.After(now) {
		s += " (due)"
	}
	return s
}

func outboxReplayCommand(admin *adminOptions) *cobra.Command {
	var dead bool
	cmd := &cobra.Command{
		Use:   "replay <id>... | --dead",
		Short: "Makes entries pending again, their next attempt now",
		Long: `Makes the entries with these ids (webhook-ids, as outbox list shows them), or
every dead entry (--dead), pending with their next attempt now: the outbox
delivers them within seconds. A dead or delivered entry gets a fresh give_up
window and starts the retry list over.

Prints how many entries were replayed. With ids, the exit status is non-zero
when some of them are not in the outbox.`,
		Example: `  caddy alipay-notify outbox replay 2019081500222155624068450559358070
  caddy alipay-notify outbox replay --dead`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var req any
			switch {
			case dead && len(args) > 0:
				return errors.New("give ids or --dead, not both")
			case dead:
				req = map[string]string{"state": string(outbox.Dead)}
			case len(args) == 0:
				return errors.New("which entries? give their ids (outbox list shows them), or --dead for every dead entry")
			default:
				args = uniq(args)
				req = map[string][]string{"ids": args}
			}
			n, err := admin.postForCount(cmd.Context(), outboxReplayPath, req, "replayed")
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if dead {
				fmt.Fprintf(out, "replayed %d dead %s\n", n, plural(n, "entry", "entries"))
				return nil
			}
			fmt.Fprintf(out, "replayed %d of %d %s\n", n, len(args), plural(len(args), "entry", "entries"))
			if n < len(args) {
				return fmt.Errorf("%d of the ids %s not in the outbox (outbox list shows the ids)", len(args)-n, plural(len(args)-n, "is", "are"))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dead, "dead", false, "replay every dead entry")
	return cmd
}

func outboxDropCommand(admin *adminOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "drop <id>...",
		Short: "Removes entries from the outbox",
		Long: `Removes the entries with these ids (webhook-ids, as outbox list shows them)
from the outbox, whatever their state: a pending one is never delivered. An
id that is not in the outbox is an error (the admin API answers 404).`,
		Example: `  caddy alipay-notify outbox drop 2019081500222155624068450559358070`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := admin.client()
			if err != nil {
				return err
			}
			var failed []string
			for _, id := range uniq(args) {
				if _, err := c.call(cmd.Context(), http.MethodDelete, outboxPath+"/"+url.PathEscape(id), nil); err != nil {
					if len(args) == 1 {
						return err
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", id, err)
					failed = append(failed, id)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "dropped %s\n", id)
			}
			if len(failed) > 0 {
				return fmt.Errorf("not dropped: %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
}

func outboxMoveCommand(admin *adminOptions) *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "move --from <forward URL> --to <forward URL>",
		Short: "Hands the entries of an old forward URL to a handler's outbox",
		Long: `Entries are kept per forward URL. When a reload changes a handler's forward
URL while entries are pending, they stay under the old URL, where nothing
delivers them (Caddy logs a WARN naming it, and the gauges count them).
move hands every entry of --from to the handler forwarding to --to, which
must be an alipay_notify handler with an outbox in the running
configuration: pending entries are delivered at once, dead and delivered
ones keep their state (and so Alipay's retries of them are still answered
delivered_earlier). An id the handler already holds keeps the handler's own
entry.

Either URL may be given with its password redacted, as outbox list shows it.
The exit status is non-zero when --from has no entries.`,
		Example: `  caddy alipay-notify outbox move --from http://10.0.0.7:8080/alipay --to http://10.0.0.8:8080/alipay`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return errors.New("give --from, the forward URL the entries are under (outbox list shows it), and --to, a handler's forward URL")
			}
			n, err := admin.postForCount(cmd.Context(), outboxMovePath, map[string]string{"from": from, "to": to}, "moved")
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "moved %d %s to %s\n", n, plural(n, "entry", "entries"), to)
			if n == 0 {
				return fmt.Errorf("the outbox has no entries of %s (outbox list shows each entry's forward)", from)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the forward URL the entries are under")
	cmd.Flags().StringVar(&to, "to", "", "the forward URL of the handler to hand them to")
	return cmd
}

// postForCount POSTs req as JSON to the admin API at path and returns the
// number in the answer's field (the API answers {"<field>": N}).
func (o *adminOptions) postForCount(ctx context.Context, path string, req any, field string) (int, error) {
	c, err := o.client()
	if err != nil {
		return 0, err
	}
	body, _ := json.Marshal(req)
	data, err := c.call(ctx, http.MethodPost, path, body)
	if err != nil {
		return 0, err
	}
	var answer map[string]*int
	if err := json.Unmarshal(data, &answer); err != nil || answer[field] == nil {
		return 0, fmt.Errorf("the admin API at %s answered something unexpected: %s", c.addr, shorten(string(data)))
	}
	return *answer[field], nil
}

func uniq(ids []string) []string {
	var out []string
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// shorten bounds a text quoted in a message.
func shorten(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// adminClient calls Caddy's admin API as caddycmd.AdminAPIRequest does
// (TCP or a unix socket, the Origin header), but reads the API's error
// message itself, to print it as it is.
type adminClient struct {
	addr   string // as given, for messages
	origin string
	unix   bool
	client *http.Client
}

func newAdminClient(addr string) (*adminClient, error) {
	parsed, err := caddy.ParseNetworkAddress(addr)
	if err != nil {
		return nil, fmt.Errorf("admin address %q: %v (want host:port, e.g. localhost:2019, or unix//path/to/socket)", addr, err)
	}
	if parsed.PortRangeSize() > 1 {
		return nil, fmt.Errorf("admin address %q: a port range; want one port", addr)
	}
	network, dialAddr := parsed.Network, parsed.JoinHostPort(0)
	origin := "http://" + dialAddr
	switch {
	case parsed.IsUnixNetwork():
		// unix//path|0222: the socket's permission bits are not part of its path.
		path, _, _ := strings.Cut(parsed.Host, "|")
		dialAddr, origin = path, "http://127.0.0.1"
	case parsed.IsFdNetwork():
		return nil, fmt.Errorf("admin address %q: a file descriptor cannot be reached from another process", addr)
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	return &adminClient{
		addr:   addr,
		origin: origin,
		unix:   parsed.IsUnixNetwork(),
		client: &http.Client{
			Timeout: adminTimeout,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return dialer.DialContext(ctx, network, dialAddr)
				},
			},
		},
	}, nil
}

// call makes one request and returns the body of a 2xx answer; any other
// answer is an error with the API's message.
func (c *adminClient) call(ctx context.Context, method, uri string, body []byte) ([]byte, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.origin+uri, r)
	if err != nil {
		return nil, fmt.Errorf("admin address %q: %v", c.addr, unwrapURLError(err))
	}
	if !c.unix {
		req.Header.Set("Origin", c.origin)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach Caddy's admin API at %s: %v (is Caddy running, with its admin API at that address? give it with --address, or CADDY_ADMIN; \"admin off\" turns it off)", c.addr, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("admin API at %s: reading the answer: %w", c.addr, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return data, nil
	}
	var apiErr struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &apiErr) == nil && apiErr.Error != "" {
		return nil, fmt.Errorf("admin API: %s (HTTP %d)", apiErr.Error, resp.StatusCode)
	}
	if resp.StatusCode == http.StatusNotFound && strings.HasPrefix(uri, outboxPath) {
		return nil, fmt.Errorf("the admin API at %s has no %s (HTTP 404): is that Caddy built with this plugin (caddy list-modules shows admin.api.alipay_notify)?", c.addr, outboxPath)
	}
	return nil, fmt.Errorf("admin API at %s: HTTP %d: %s", c.addr, resp.StatusCode, shorten(string(data)))
}

// unwrapURLError drops the "Get "http://...": " that net/http prefixes,
// whose URL is not the address the user gave for a unix socket.
func unwrapURLError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}
