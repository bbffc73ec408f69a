package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// Hostile clients against the built binary: bodies larger than max_body,
// announced or streamed, and bodies trickled slower than the server
// timeouts allow.

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
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n%s\r\n", path, addr, testkit.ContentType, headers); err != nil {
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
	testkit.CaddyBinary(t)
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
	listen := testkit.FreePort(t)
	config := notifyCaddyfile(t, listen, "off", notifyRoute{"/alipay/notify", upstream.URL, "max_body 8KiB"})
	testkit.RunCaddy(t, config, listen)
	const hundredMB = 100 << 20

	for _, tc := range []struct {
		name, header string
		send         func(io.Writer) (int64, error)
	}{
		{"Content-Length over max_body", "Content-Length: 104857600\r\n", func(w io.Writer) (int64, error) {
			n, err := io.Copy(w, io.LimitReader(neverEnding('a'), hundredMB))
			return n, err
		}},
		{"chunked, 100 MB", "Transfer-Encoding: chunked\r\n", chunkedSender(hundredMB)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := rawPost(t, listen, "/alipay/notify", tc.header, tc.send)
			if res.err != nil || res.status != 413 || res.answer != "fail" {
				t.Fatalf("answer %d %q (%v), want 413 fail", res.status, res.answer, res.err)
			}
			if res.written >= hundredMB {
				t.Errorf("the client could write all %d bytes: the body was read to its end", res.written)
			}
			t.Logf("the client wrote %d bytes before the connection closed", res.written)
		})
	}
	t.Run("chunked, just over", func(t *testing.T) {
		body := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, time.Now()), false)) + "&pad=" + strings.Repeat("p", 8<<10)
		res := rawPost(t, listen, "/alipay/notify", "Transfer-Encoding: chunked\r\n", func(w io.Writer) (int64, error) {
			_, err := fmt.Fprintf(w, "%x\r\n%s\r\n0\r\n\r\n", len(body), body)
			return int64(len(body)), err
		})
		if res.err != nil || res.status != 413 || res.answer != "fail" {
			t.Fatalf("answer %d %q (%v), want 413 fail", res.status, res.answer, res.err)
		}
	})
	if got := upstream.Take(); len(got) != 0 {
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
	testkit.CaddyBinary(t)
	upstream := testkit.NewUpstream(t, testkit.Secret, testkit.Status(http.StatusOK, 0))
	listen := testkit.FreePort(t)
	config := strings.Replace(notifyCaddyfile(t, listen, "off", notifyRoute{"/alipay/notify", upstream.URL, ""}),
		"default_bind 127.0.0.1", "default_bind 127.0.0.1\n\tservers {\n\t\ttimeouts {\n\t\t\tread_body 2s\n\t\t\tread_header 2s\n\t\t}\n\t}", 1)
	testkit.RunCaddy(t, config, listen)
	body := testkit.EncodeForm(testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, time.Now()), false))

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
		request := "POST /alipay/notify HTTP/1.1\r\nHost: x\r\nContent-Type: " + testkit.ContentType + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
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
	if got := upstream.Take(); len(got) != 0 {
		t.Fatalf("a trickled notification reached the upstream (%d webhooks)", len(got))
	}
}
