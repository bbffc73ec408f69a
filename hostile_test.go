package alipaynotify

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// Hostile input, through real servers: the Handler behind an httptest server
// for the request shapes, and the built binary where Caddy's own server
// (chunked bodies, connection handling, timeouts) takes part. Every case gets
// the answer of the table in README.md, never a panic, and a refused
// notification never reaches the upstream.

// provisionTestHandler provisions h like Caddy does, with a test logger at
// DEBUG (so that the DEBUG paths run too), and cleans it up after the test.
func provisionTestHandler(t testing.TB, h *Handler) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	if tt, ok := t.(*testing.T); ok {
		h.logger = zaptest.NewLogger(tt, zaptest.Level(zap.DebugLevel))
	} else {
		h.logger = zap.NewNop()
	}
}

// handlerServer serves h (provisioned for testAppID and the test key,
// forwarding to upstream) on a free loopback port; configure adjusts h first.
func handlerServer(t *testing.T, upstream string, configure func(*Handler)) string {
	t.Helper()
	h := &Handler{
		Verifier: Verifier{
			AppIDs:    []string{testAppID},
			KeySource: KeySource{AlipayPublicKeys: []string{testPublicKeyLine(t, "alipay")}},
		},
		Forward:        upstream,
		WebhookSecrets: []string{testSecret},
		Timeout:        caddy.Duration(5 * time.Second),
	}
	if configure != nil {
		configure(h)
	}
	provisionTestHandler(t, h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.ServeHTTP(w, r, nil); err != nil {
			t.Errorf("ServeHTTP returned an error: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/alipay/notify"
}

// withBody returns params with a "body" field (a signed trade field) of value.
func withBody(params []kv, value string) []kv { return set(params, "body", value) }

func TestHostileRequests(t *testing.T) {
	upstream := newTestUpstream(t, testSecret, http.StatusOK, 0)
	url := handlerServer(t, upstream.URL, nil)
	bigURL := handlerServer(t, upstream.URL, func(h *Handler) { h.MaxBody = 1 << 20 })
	alipay := testKey(t, "alipay")
	base := tradeParams(testAppID, time.Now())
	good := signed(t, alipay, base, false)
	goodBody := encodeForm(good)
	sign := good[len(good)-1].v
	signEscaped := "sign=" + strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(sign, "+", "%2B"), "/", "%2F"), "=", "%3D")
	if !strings.Contains(goodBody, signEscaped) {
		t.Fatal("test bug: sign not found in the body")
	}
	// withSign replaces sign's value (encoded as Alipay does); withRawSign
	// puts raw bytes into the body instead.
	withRawSign := func(raw string) string { return strings.Replace(goodBody, signEscaped, "sign="+raw, 1) }
	withSign := func(value string) string { return withRawSign(neturl.QueryEscape(value)) }

	manyParams := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "&p%05d=%d", i, i)
		}
		return b.String()
	}
	var manySigned []kv
	for i := range 10000 {
		manySigned = append(manySigned, kv{fmt.Sprintf("p%05d", i), strconv.Itoa(i)})
	}
	manySigned = signed(t, alipay, append(append([]kv(nil), base...), manySigned...), false)
	long := strings.Repeat("long value ", 5000) // 55 000 bytes, as many encoded
	spaced := strings.ReplaceAll(sign, "+", " ")
	if spaced == sign { // a signature without '+': make one
		spaced = sign[:10] + " " + sign[11:]
	}

	tests := []struct {
		name, url, body string
		status          int
		forwarded       bool
	}{
		{name: "valid (control)", url: url, body: goodBody, status: 200, forwarded: true},
		{name: "invalid UTF-8 in a signed value", url: url, body: encodeForm(signed(t, alipay, withBody(base, "ok\xff\xfe"), false)), status: 400},
		{name: "invalid UTF-8 in a key", url: url, body: goodBody + "&k%C3%28=1", status: 400},
		{name: "overlong UTF-8 encoding of '/'", url: url, body: goodBody + "&x=%C0%AF", status: 400},
		{name: "UTF-16 surrogate in UTF-8", url: url, body: goodBody + "&x=%ED%A0%80", status: 400},
		{name: "invalid GBK in a signed value", url: url, body: encodeForm(signed(t, alipay, withBody(set(base, "charset", "gbk"), "\xff\xff"), false)), status: 400},
		{name: "truncated GBK character", url: url, body: encodeForm(signed(t, alipay, withBody(set(base, "charset", "gbk"), "\xb0"), false)), status: 400},
		{name: "NUL added to a signed value", url: url, body: encodeForm(withBody(good, "a\x00b")), status: 403},
		{name: "raw NUL bytes added", url: url, body: goodBody + "&x=\x00\x00", status: 403},
		{name: "NUL in a key", url: url, body: goodBody + "&a%00b=1", status: 400},
		{name: "NUL signed by Alipay's key is data", url: url, body: encodeForm(signed(t, alipay, withBody(base, "a\x00b"), false)), status: 200, forwarded: true},
		{name: "10 000 parameters added, default max_body", url: url, body: goodBody + manyParams(10000), status: 413},
		{name: "10 000 parameters added", url: bigURL, body: goodBody + manyParams(10000), status: 403},
		{name: "10 000 parameters, all signed", url: bigURL, body: encodeForm(manySigned), status: 200, forwarded: true},
		{name: "10 000 copies of one key", url: bigURL, body: goodBody + strings.Repeat("&x=1", 10000), status: 400},
		{name: "10 000 empty pairs", url: bigURL, body: goodBody + strings.Repeat("&", 10000), status: 200, forwarded: true},
		{name: "very long value added", url: url, body: goodBody + "&x=" + strings.Repeat("a", 60000), status: 403},
		{name: "very long signed value replaced", url: url, body: encodeForm(withBody(good, long)), status: 403},
		{name: "very long value signed", url: url, body: encodeForm(signed(t, alipay, withBody(base, long), false)), status: 200, forwarded: true},
		{name: "very long key", url: url, body: goodBody + "&" + strings.Repeat("k", 60000) + "=1", status: 403},
		{name: "value of 60 000 escapes", url: url, body: goodBody + "&x=" + strings.Repeat("%41", 20000), status: 403},
		{name: "key differing only by case", url: url, body: goodBody + "&TOTAL_AMOUNT=999.00", status: 403},
		{name: "case variant replaces the key", url: url, body: strings.Replace(goodBody, "total_amount=", "Total_Amount=", 1), status: 403},
		{name: "sign with spaces ('+' decoded twice)", url: url, body: withSign(spaced), status: 400},
		{name: "sign with '+' left raw", url: url, body: withRawSign(neturl.QueryEscape(sign[:10]) + "+" + neturl.QueryEscape(sign[10:])), status: 400},
		{name: "sign with a leading space", url: url, body: withSign(" " + sign), status: 400},
		{name: "sign with a tab", url: url, body: withSign(sign[:20] + "\t" + sign[20:]), status: 400},
		{name: "sign in URL-safe base64", url: url, body: withSign(strings.NewReplacer("+", "-", "/", "_").Replace(sign)), status: 400},
		{name: "sign with line breaks (ignored by base64 decoders, Alipay's Java SDK included): not canonical", url: url, body: withSign(sign[:76] + "\r\n" + sign[76:152] + "\n" + sign[152:]), status: 400},
		{name: "sign without padding", url: url, body: withSign(strings.TrimRight(sign, "=")), status: 400},
		{name: "sign cut short", url: url, body: withSign(sign[:len(sign)-8]), status: 403},
		{name: "sign empty", url: url, body: withSign(""), status: 400},
		{name: "sign of zeros", url: url, body: withSign(strings.Repeat("A", len(sign))), status: 403},
		{name: "sign of 100 KB", url: bigURL, body: withSign(strings.Repeat("QUFB", 25000)), status: 403},
		{name: "only separators and equals", url: url, body: "&=&=&", status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			upstream.take()
			status, answer, header := postNotification(t, tc.url, tc.body)
			wantAnswer := "fail"
			if tc.status == 200 {
				wantAnswer = "success"
			}
			if status != tc.status || answer != wantAnswer {
				t.Errorf("answer %d %q, want %d %q", status, answer, tc.status, wantAnswer)
			}
			if ct := header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			got := upstream.take()
			switch {
			case tc.forwarded && len(got) != 1:
				t.Fatalf("upstream got %d webhooks, want 1", len(got))
			case !tc.forwarded && len(got) != 0:
				t.Fatalf("a refused notification reached the upstream (%d webhooks)", len(got))
			case tc.forwarded && got[0].verifyErr != nil:
				t.Fatalf("official library refuses the webhook: %v", got[0].verifyErr)
			}
		})
	}

	t.Run("signed NUL arrives as \\u0000 in the JSON", func(t *testing.T) {
		upstream.take()
		postNotification(t, url, encodeForm(signed(t, alipay, withBody(base, "a\x00b"), false)))
		got := upstream.take()
		if len(got) != 1 || got[0].event.Data["body"] != "a\x00b" || !strings.Contains(string(got[0].body), `"a\u0000b"`) {
			t.Fatalf("webhooks %d: %v", len(got), got)
		}
	})
	t.Run("10 000 signed parameters all arrive", func(t *testing.T) {
		upstream.take()
		postNotification(t, bigURL, encodeForm(manySigned))
		got := upstream.take()
		if len(got) != 1 || len(got[0].event.Data) != len(manySigned)-1 || got[0].event.Data["p09999"] != "9999" {
			t.Fatalf("webhooks %d", len(got))
		}
	})
}

// TestBodySizeBoundary: a signed notification of exactly max_body bytes is
// accepted, one byte more is 413, with or without Content-Length.
func TestBodySizeBoundary(t *testing.T) {
	upstream := newTestUpstream(t, testSecret, http.StatusOK, 0)
	const maxBody = 4096
	url := handlerServer(t, upstream.URL, func(h *Handler) { h.MaxBody = maxBody })
	alipay := testKey(t, "alipay")
	base := tradeParams(testAppID, time.Now())
	// A signed body field brings the body close to maxBody (the encoded
	// length of sign varies with its '+' and '/'); empty pairs ("&", which
	// carry nothing) make it exact.
	body := encodeForm(signed(t, alipay, base, false))
	body = encodeForm(signed(t, alipay, withBody(base, strings.Repeat("x", maxBody-len(body)-100)), false))
	if len(body) > maxBody {
		t.Fatalf("test bug: body of %d bytes", len(body))
	}
	body += strings.Repeat("&", maxBody-len(body))
	over := body + "&"
	for _, tc := range []struct {
		name    string
		body    string
		chunked bool
		status  int
	}{
		{"exactly max_body", body, false, 200},
		{"exactly max_body, chunked", body, true, 200},
		{"max_body + 1", over, false, 413},
		{"max_body + 1, chunked", over, true, 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			upstream.take()
			var reader io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				reader = io.MultiReader(reader) // hides the length: sent chunked
			}
			req, _ := http.NewRequest(http.MethodPost, url, reader)
			req.Header.Set("Content-Type", alipayFormType)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d %q, want %d", resp.StatusCode, answer, tc.status)
			}
			if n := len(upstream.take()); (tc.status == 200) != (n == 1) {
				t.Errorf("%d webhooks", n)
			}
		})
	}
}

// rawResponse is what a raw HTTP/1.1 exchange produced.
type rawResponse struct {
	status  int
	answer  string
	written int64 // body bytes the client managed to write
	err     error // reading the response
}

// rawPost sends a POST over a plain TCP connection with the given extra
// header lines, writes the body with send (which may trickle or stream), and
// reads the response concurrently, as soon as the server sends it.
func rawPost(t *testing.T, addr, path, headers string, send func(w io.Writer) (int64, error)) rawResponse {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second)) // a hang fails the test instead of blocking it
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n%s\r\n", path, addr, alipayFormType, headers); err != nil {
		t.Fatal(err)
	}
	written := make(chan int64, 1)
	go func() {
		n, _ := send(conn)
		written <- n
	}()
	var res rawResponse
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		res.err = err
	} else {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		res.status, res.answer = resp.StatusCode, string(body)
	}
	conn.Close() // stops a writer still streaming
	res.written = <-written
	return res
}

// chunkedSender streams total bytes of "x=aaaa..." as chunked encoding.
func chunkedSender(total int64) func(io.Writer) (int64, error) {
	return func(w io.Writer) (int64, error) {
		chunk := []byte(strings.Repeat("a", 32<<10))
		copy(chunk, "x=")
		var sent int64
		for sent < total {
			if _, err := fmt.Fprintf(w, "%x\r\n%s\r\n", len(chunk), chunk); err != nil {
				return sent, err
			}
			sent += int64(len(chunk))
		}
		_, err := io.WriteString(w, "0\r\n\r\n")
		return sent, err
	}
}

// TestOversizedBodiesThroughCaddy: the built binary answers 413 to bodies
// over max_body whether the length is announced or not, without reading a
// 100 MB stream to its end, and forwards nothing.
func TestOversizedBodiesThroughCaddy(t *testing.T) {
	caddyBinary(t)
	upstream := newTestUpstream(t, testSecret, http.StatusOK, 0)
	listen := freePort(t)
	config := strings.Replace(siteConfig(t, listen, upstream.URL, testSecret), "webhook_secret", "max_body 8KiB\n\t\twebhook_secret", 1)
	runCaddy(t, config, listen)
	const hundredMB = 100 << 20

	t.Run("Content-Length over max_body", func(t *testing.T) {
		res := rawPost(t, listen, "/alipay/notify", "Content-Length: 104857600\r\n", func(w io.Writer) (int64, error) {
			n, err := io.Copy(w, io.LimitReader(neverEnding('a'), hundredMB))
			return n, err
		})
		if res.err != nil || res.status != 413 || res.answer != "fail" {
			t.Fatalf("answer %d %q (%v), want 413 fail", res.status, res.answer, res.err)
		}
		if res.written >= hundredMB {
			t.Errorf("the client could write all %d bytes: the body was read to its end", res.written)
		}
		t.Logf("the client wrote %d bytes before the connection closed", res.written)
	})
	t.Run("chunked, 100 MB", func(t *testing.T) {
		res := rawPost(t, listen, "/alipay/notify", "Transfer-Encoding: chunked\r\n", chunkedSender(hundredMB))
		if res.err != nil || res.status != 413 || res.answer != "fail" {
			t.Fatalf("answer %d %q (%v), want 413 fail", res.status, res.answer, res.err)
		}
		if res.written >= hundredMB {
			t.Errorf("the client could write all %d bytes: the body was read to its end", res.written)
		}
		t.Logf("the client wrote %d bytes before the connection closed", res.written)
	})
	t.Run("chunked, just over", func(t *testing.T) {
		body := encodeForm(signed(t, testKey(t, "alipay"), tradeParams(testAppID, time.Now()), false)) + "&pad=" + strings.Repeat("p", 8<<10)
		res := rawPost(t, listen, "/alipay/notify", "Transfer-Encoding: chunked\r\n", func(w io.Writer) (int64, error) {
			_, err := fmt.Fprintf(w, "%x\r\n%s\r\n0\r\n\r\n", len(body), body)
			return int64(len(body)), err
		})
		if res.err != nil || res.status != 413 || res.answer != "fail" {
			t.Fatalf("answer %d %q (%v), want 413 fail", res.status, res.answer, res.err)
		}
	})
	if got := upstream.take(); len(got) != 0 {
		t.Fatalf("an oversized body reached the upstream (%d webhooks)", len(got))
	}
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// TestSlowBodyThroughCaddy: with the recommended server timeout
// (servers { timeouts { read_body ... } }), a client trickling a genuine
// notification byte by byte is cut off, and nothing is forwarded. Caddy's
// defaults alone (read_header 1m, read_body_idle 1m reset by every byte, no
// read_body) would let it hold the connection for as long as it keeps
// trickling.
func TestSlowBodyThroughCaddy(t *testing.T) {
	caddyBinary(t)
	upstream := newTestUpstream(t, testSecret, http.StatusOK, 0)
	listen := freePort(t)
	config := strings.Replace(siteConfig(t, listen, upstream.URL, testSecret),
		"default_bind 127.0.0.1", "default_bind 127.0.0.1\n\tservers {\n\t\ttimeouts {\n\t\t\tread_body 2s\n\t\t\tread_header 2s\n\t\t}\n\t}", 1)
	runCaddy(t, config, listen)
	body := encodeForm(signed(t, testKey(t, "alipay"), tradeParams(testAppID, time.Now()), false))

	t.Run("trickled body", func(t *testing.T) {
		stop := make(chan struct{})
		defer close(stop)
		res := rawPost(t, listen, "/alipay/notify", "Content-Length: "+strconv.Itoa(len(body))+"\r\n", func(w io.Writer) (int64, error) {
			var sent int64
			for i := range len(body) {
				if _, err := w.Write([]byte{body[i]}); err != nil {
					return sent, err
				}
				sent++
				select {
				case <-stop:
					return sent, nil
				case <-time.After(100 * time.Millisecond): // the whole body would take about 2 minutes
				}
			}
			return sent, nil
		})
		// Cut off: either a 400 fail (the handler saw the read error) or the
		// connection closed without an answer; never a success.
		if res.err == nil && (res.status != 400 || res.answer != "fail") {
			t.Fatalf("answer %d %q, want 400 fail or a closed connection", res.status, res.answer)
		}
		if res.written >= int64(len(body)) {
			t.Fatalf("the whole body was sent: the trickle was not cut off")
		}
		t.Logf("cut off after %d of %d bytes: %d %q %v", res.written, len(body), res.status, res.answer, res.err)
	})
	t.Run("trickled headers", func(t *testing.T) {
		conn, err := net.Dial("tcp", listen)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
		request := "POST /alipay/notify HTTP/1.1\r\nHost: x\r\nContent-Type: " + alipayFormType + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
		closed := make(chan error, 1)
		go func() {
			_, err := io.ReadAll(conn) // returns when the server closes the connection
			closed <- err
		}()
		sent := 0
	trickle:
		for ; sent < len(request); sent++ {
			if _, err := conn.Write([]byte{request[sent]}); err != nil {
				break
			}
			select {
			case <-closed:
				break trickle
			case <-time.After(100 * time.Millisecond):
			}
		}
		if sent >= len(request) {
			t.Fatal("the whole request was sent: the trickle was not cut off")
		}
	})
	if got := upstream.take(); len(got) != 0 {
		t.Fatalf("a trickled notification reached the upstream (%d webhooks)", len(got))
	}
}
