package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"github.com/spf13/cobra"
)

// alipayPostContentType is the Content-Type of Alipay's notification POSTs,
// malformed as it is (two media types).
const alipayPostContentType = "application/x-www-form-urlencoded; text/html; charset=UTF-8"

func sendCommand() *cobra.Command {
	var o signOptions
	var bodyFile string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "send [--key <private key file> --app-id <app_id> [sign flags] [<key>=<value>...] | --body <file>] <notify URL>",
		Short: "Signs a test notification and POSTs it like Alipay, or POSTs a captured body",
		Long: `Signs a notification like caddy alipay-notify sign and POSTs it to a URL the
way Alipay does (Content-Type "` + alipayPostContentType + `"),
then prints the answer's status and body. Point it at a running alipay_notify
configured with the public key of the test pair, in front of your upstream,
to exercise both end to end.

--body sends a file (or stdin: -) as it is instead, e.g. a body printed by
sign, a captured one, or a real vector's body; the sign flags and key=value
arguments do not apply then.

Exit status 0 only when the answer is 200 "success", the only answer that
stops Alipay's retries.

` + signParamsHelp,
		Example: `  caddy alipay-notify send --key alipay-test.key.pem --app-id 2021000000000000 http://127.0.0.1:8080/alipay/notify out_trade_no=order-1 total_amount=0.01
  caddy alipay-notify sign --key alipay-test.key.pem --app-id 2021000000000000 notify_id=retry-1 > body.txt
  caddy alipay-notify send --body body.txt http://127.0.0.1:8080/alipay/notify     # Alipay's first try
  caddy alipay-notify send --body body.txt http://127.0.0.1:8080/alipay/notify     # its retry: the same notify_id`,
		RunE: func(cmd *cobra.Command, args []string) error {
			target, params, err := splitSendArgs(args)
			if err != nil {
				return err
			}
			var body, what string
			if bodyFile != "" {
				for _, flag := range []string{"key", "app-id", "sign-type", "charset", "json", "v2"} {
					if cmd.Flags().Changed(flag) {
						return fmt.Errorf("--body sends a file as it is: --%s does not apply", flag)
					}
				}
				if len(params) > 0 {
					return fmt.Errorf("--body sends a file as it is: the arguments %s do not apply", strings.Join(params, " "))
				}
				data, err := readInput(cmd.InOrStdin(), bodyFile)
				if err != nil {
					return fmt.Errorf("--body: %w", err)
				}
				body, what = string(data), "--body "+bodyFile
			} else {
				signed, err := o.build(cmd, params, cmd.InOrStdin())
				if err != nil {
					return err
				}
				body = signed.Body()
				what = "notify_id " + paramValue(signed.Params, "notify_id")
			}
			return sendNotification(cmd, target, body, what, timeout)
		},
	}
	o.addFlags(cmd)
	cmd.Flags().StringVar(&bodyFile, "body", "", `send this file's content as it is ("-": stdin) instead of signing`)
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the answer")
	return cmd
}

// splitSendArgs finds the URL among the arguments; the others are key=value.
func splitSendArgs(args []string) (string, []string, error) {
	var target string
	var params []string
	for _, arg := range args {
		if strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://") {
			if target != "" {
				return "", nil, fmt.Errorf("two URLs, %s and %s: give the notify URL once", target, arg)
			}
			target = arg
			continue
		}
		params = append(params, arg)
	}
	if target == "" {
		return "", nil, errors.New("the notify URL is required, e.g. http://127.0.0.1:8080/alipay/notify")
	}
	if u, err := url.Parse(target); err != nil || u.Host == "" {
		return "", nil, fmt.Errorf("notify URL %q: want an absolute http:// or https:// URL", target)
	}
	return target, params, nil
}

func paramValue(params []alipay.Param, key string) string {
	for _, p := range params {
		if p.Key == key {
			return p.Value
		}
	}
	return ""
}

// sendNotification POSTs body like Alipay and prints "<status> <answer>".
func sendNotification(cmd *cobra.Command, target, body, what string, timeout time.Duration) error {
	client := &http.Client{
		Timeout: timeout,
		// Alipay does not follow redirects: show them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", alipayPostContentType)
	req.Header.Set("User-Agent", "Mozilla/4.0 (caddy alipay-notify send)")
	fmt.Fprintf(cmd.ErrOrStderr(), "POST %s (%s, %d bytes)\n", target, what, len(body))
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w (is Caddy running and listening there?)", target, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	answer := string(data)
	shown := answer
	if len(shown) > 200 {
		shown = shown[:200] + "…"
	}
	if strings.ContainsAny(shown, "\r\n\t") || !isPrintable(shown) {
		shown = strconv.Quote(shown)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%d %s\n", resp.StatusCode, shown)
	if resp.StatusCode == http.StatusOK && answer == answerSuccess {
		return nil
	}
	return errors.New(sendHint(resp, answer))
}

func isPrintable(s string) bool {
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}

// sendHint says what an answer other than 200 success means.
func sendHint(resp *http.Response, answer string) string {
	const retry = "Alipay would retry: only 200 \"success\" stops it. "
	switch {
	case answer == answerFail && resp.StatusCode == http.StatusForbidden:
		return retry + "alipay_notify refused the notification: Caddy's log line \"notification refused\" gives the reason (a key that is not the test pair's public key? an app_id not in app_id?)"
	case answer == answerFail && resp.StatusCode == http.StatusBadRequest:
		return retry + "alipay_notify found the notification malformed: Caddy's log line \"notification refused\" gives the reason"
	case answer == answerFail && (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout):
		return retry + "the upstream did not accept the webhook (Caddy's log: upstream_status), or did not answer: check the upstream's own log (a wrong webhook_secret makes it answer 401)"
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return retry + "the URL redirects (to " + resp.Header.Get("Location") + "), and Alipay does not follow redirects: use the final URL as notify_url"
	case resp.StatusCode == http.StatusOK && answer == "":
		return retry + "an empty answer: nothing handled the request (Caddy answers an empty 200 when no handler matches): check the URL against the matcher of alipay_notify"
	case resp.StatusCode == http.StatusNotFound:
		return retry + "nothing handles this path: check the URL against the matcher of alipay_notify"
	case resp.StatusCode == http.StatusOK && strings.TrimSpace(answer) == answerSuccess:
		return retry + "the answer has whitespace around \"success\", and Alipay wants exactly those seven characters"
	default:
		return retry + "this answer did not come from alipay_notify (it answers exactly \"success\" or \"fail\"): is the URL right?"
	}
}
