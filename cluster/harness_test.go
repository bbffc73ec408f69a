package cluster

// The harness of the cluster tests: a Redis on a free port of 127.0.0.1
// (startRedis), a Caddy binary with the redis storage module (buildCaddy),
// Caddy instances sharing that Redis (startCaddy, clusterGlobals), a tiny
// RESP client to look into Redis (dialRedis), and the storage module itself
// in the test process (openStorage) for seeding, inspecting and locking
// through the very code the instances run.
//
// Everything listens on 127.0.0.1 only, every process is stopped at the
// test's cleanup (and killed with the test binary, see childAttrs), and the
// logs of every process are printed when the test fails.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"github.com/caddyserver/caddy/v2"
	storageredis "github.com/pberkel/caddy-storage-redis"
)

// Timeouts of the harness. Generous: CI machines have two cores and the
// tests may run in parallel.
const (
	redisReadyTimeout = 10 * time.Second
	caddyReadyTimeout = 30 * time.Second
	caddyStopTimeout  = 10 * time.Second
	logTailLines      = 300
)

// ---------------------------------------------------------------------------
// TestMain and the Caddy binary

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
	buildTook time.Duration
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildCaddy builds ./cmd/caddy (Caddy, the standard modules, alipay_notify
// and the redis storage) once per test binary, into a temporary directory
// removed when the tests end, and returns the binary's path.
func buildCaddy(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("building ./cmd/caddy: the go command is not on PATH: %v", err)
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "cluster-caddy-")
		if buildErr != nil {
			return
		}
		bin := filepath.Join(buildDir, "caddy")
		start := time.Now()
		cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/caddy")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
			return
		}
		buildTook = time.Since(start)
		buildBin = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// ---------------------------------------------------------------------------
// Ports

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago and
// that no other caller in this test binary got before.
func freePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("freePort: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		portsMu.Lock()
		given := portsGiven[port]
		portsGiven[port] = true
		portsMu.Unlock()
		if !given {
			return port
		}
	}
	t.Fatal("freePort: no new free port after 100 tries")
	return 0
}

// ---------------------------------------------------------------------------
// Redis

// redisServerPath finds redis-server. Without it the test fails when CI is
// set, and is skipped otherwise (run-tests.sh installs it).
func redisServerPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	const msg = "redis-server not found: run cluster/run-tests.sh, or apt-get install redis-server"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// startRedis starts a redis-server of its own on a free port of 127.0.0.1
// (no persistence, a temporary directory), waits until it answers PING, and
// stops it at the test's cleanup. It returns the address, "127.0.0.1:port".
func startRedis(t testing.TB) string {
	t.Helper()
	bin := redisServerPath(t)
	var lastLog string
	for range 3 {
		dir := t.TempDir()
		port := freePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		out := &testkit.SyncBuffer{}
		cmd := exec.Command(bin,
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--daemonize", "no",
			"--protected-mode", "yes",
		)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = childAttrs()
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting redis-server: %v", err)
		}
		done := make(chan struct{})
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(done) }()

		ready, exited := false, false
		deadline := time.Now().Add(redisReadyTimeout)
		for !ready && !exited && time.Now().Before(deadline) {
			select {
			case <-done:
				exited = true
				continue
			default:
			}
			if c, err := newRedisClient(addr); err == nil {
				v, err := c.Do("PING")
				c.Close()
				ready = err == nil && v == "PONG"
			}
			if !ready {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if ready {
			t.Cleanup(func() {
				testkit.Stop(cmd, done, syscall.SIGTERM, 5*time.Second)
				if t.Failed() {
					t.Logf("redis-server %s log:\n%s", addr, tail(out.String(), logTailLines))
				}
			})
			return addr
		}
		if !exited {
			testkit.Stop(cmd, done, syscall.SIGTERM, time.Second)
			t.Fatalf("redis-server on %s did not answer PING within %v; log:\n%s", addr, redisReadyTimeout, out.String())
		}
		lastLog = out.String()
		if !strings.Contains(lastLog, "Address already in use") {
			t.Fatalf("redis-server on %s exited (%v); log:\n%s", addr, waitErr, lastLog)
		}
		// Someone took the port in between: try another one.
	}
	t.Fatalf("redis-server: no free port after 3 tries; last log:\n%s", lastLog)
	return ""
}

// redisClient is a tiny RESP2 client, enough to look into the test's Redis:
// Do("KEYS", "*"), Do("GET", k), Do("PTTL", k), Do("SET", k, v, "PX", "3000").
// Replies: simple strings as string, integers as int64, bulk strings as
// []byte (nil when absent), arrays as []any, errors as redisError. Safe for
// concurrent use.
type redisClient struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

type redisError string

func (e redisError) Error() string { return "redis: " + string(e) }

func newRedisClient(addr string) (*redisClient, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	return &redisClient{conn: conn, r: bufio.NewReader(conn)}, nil
}

// dialRedis connects to the Redis at addr, closed at the test's cleanup.
func dialRedis(t testing.TB, addr string) *redisClient {
	t.Helper()
	c, err := newRedisClient(addr)
	if err != nil {
		t.Fatalf("connecting to redis %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (c *redisClient) Close() error { return c.conn.Close() }

// Do sends one command and reads its reply; a Redis error reply is returned
// as a redisError.
func (c *redisClient) Do(args ...string) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write(b.Bytes()); err != nil {
		return nil, err
	}
	v, err := c.read()
	if err != nil {
		return nil, err
	}
	if e, ok := v.(redisError); ok {
		return nil, e
	}
	return v, nil
}

func (c *redisClient) read() (any, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("redis: empty reply line")
	}
	kind, rest := line[0], line[1:]
	switch kind {
	case '+':
		return rest, nil
	case '-':
		return redisError(rest), nil
	case ':':
		return strconv.ParseInt(rest, 10, 64)
	case '$':
		n, err := strconv.Atoi(rest)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			return nil, err
		}
		return buf[:n], nil
	case '*':
		n, err := strconv.Atoi(rest)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		arr := make([]any, n)
		for i := range arr {
			// An error inside an array stays a redisError element.
			if arr[i], err = c.read(); err != nil {
				return nil, err
			}
		}
		return arr, nil
	}
	return nil, fmt.Errorf("redis: unexpected reply %q", line)
}

// do is Do for the test's goroutine: any error fails the test.
func (c *redisClient) do(t testing.TB, args ...string) any {
	t.Helper()
	v, err := c.Do(args...)
	if err != nil {
		t.Fatalf("redis %q: %v", args, err)
	}
	return v
}

// keys lists the keys matching a glob pattern, sorted by Redis' whim.
func (c *redisClient) keys(t testing.TB, pattern string) []string {
	t.Helper()
	arr, _ := c.do(t, "KEYS", pattern).([]any)
	keys := make([]string, 0, len(arr))
	for _, k := range arr {
		keys = append(keys, replyString(k))
	}
	return keys
}

// storageValue reads the value that the redis storage module stored under a
// full Redis key (key_prefix + "/" + storage key): the module keeps a JSON
// envelope {"value": base64, "modified", "size", "compression",
// "encryption"}; this returns the value inside. Nil when the key is absent.
// The harness configures neither compression nor encryption.
func (c *redisClient) storageValue(t testing.TB, redisKey string) []byte {
	t.Helper()
	v := c.do(t, "GET", redisKey)
	if v == nil {
		return nil
	}
	var sd storageredis.StorageData
	if err := json.Unmarshal(v.([]byte), &sd); err != nil {
		t.Fatalf("redis key %s: not the storage module's envelope: %v", redisKey, err)
	}
	if sd.Compression != 0 || sd.Encryption != 0 {
		t.Fatalf("redis key %s: compressed or encrypted (%d, %d); use openStorage", redisKey, sd.Compression, sd.Encryption)
	}
	return sd.Value
}

func replyString(v any) string {
	switch v := v.(type) {
	case []byte:
		return string(v)
	case string:
		return v
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// ---------------------------------------------------------------------------
// The storage module in the test process

// openStorage provisions the redis storage module (the same code and
// version as in the Caddy instances) in the test process, on the Redis at
// redisAddr with the given key_prefix: a test seeds, reads, lists and locks
// the cluster's storage through it. Closed at the test's cleanup; call its
// Cleanup earlier to simulate a crashed holder of its locks (their refresh
// stops; they expire within 5 s).
func openStorage(t testing.TB, redisAddr, keyPrefix string) *storageredis.RedisStorage {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	rs := storageredis.New()
	rs.Address = []string{redisAddr}
	rs.KeyPrefix = keyPrefix
	if err := rs.Provision(ctx); err != nil {
		cancel()
		t.Fatalf("provisioning the redis storage on %s: %v", redisAddr, err)
	}
	t.Cleanup(func() {
		rs.Cleanup()
		cancel()
	})
	return rs
}

// ---------------------------------------------------------------------------
// Caddy instances

// caddyPorts are the ports of one instance: its HTTP sites, its (unused,
// auto_https is off) HTTPS port, and its admin endpoint.
type caddyPorts struct{ HTTP, HTTPS, Admin int }

func newCaddyPorts(t testing.TB) caddyPorts {
	t.Helper()
	return caddyPorts{HTTP: freePort(t), HTTPS: freePort(t), Admin: freePort(t)}
}

// clusterGlobals is the global options block of a cluster member: admin on
// 127.0.0.1, its HTTP and HTTPS ports, auto_https off, every listener bound
// to 127.0.0.1, a short grace period, and the shared storage redis with the
// given key_prefix. extra lines (e.g. "debug") go inside the block. Append
// site blocks on p.HTTP, e.g. fmt.Sprintf(":%d {\n\trespond ok\n}\n", p.HTTP).
func clusterGlobals(p caddyPorts, redisAddr, keyPrefix string, extra ...string) string {
	var b strings.Builder
	b.WriteString("{\n")
	fmt.Fprintf(&b, "\tadmin 127.0.0.1:%d\n", p.Admin)
	fmt.Fprintf(&b, "\thttp_port %d\n", p.HTTP)
	fmt.Fprintf(&b, "\thttps_port %d\n", p.HTTPS)
	b.WriteString("\tauto_https off\n")
	b.WriteString("\tdefault_bind 127.0.0.1\n")
	b.WriteString("\tgrace_period 3s\n")
	fmt.Fprintf(&b, "\tstorage redis {\n\t\taddress %s\n\t\tkey_prefix %s\n\t}\n", redisAddr, keyPrefix)
	for _, l := range extra {
		b.WriteString("\t" + l + "\n")
	}
	b.WriteString("}\n\n")
	return b.String()
}

// instance is one running Caddy (see startCaddy).
type instance struct {
	Name       string
	Dir        string         // its temporary directory: Caddyfile, HOME, XDG dirs
	ConfigPath string         // the Caddyfile
	Config     map[string]any // the Caddyfile adapted to JSON
	AdminAddr  string         // "127.0.0.1:port"
	HTTPAddrs  []string       // the TCP listeners of its HTTP servers, dialable

	t       testing.TB
	bin     string
	env     []string
	mu      sync.Mutex
	cmd     *exec.Cmd
	out     *testkit.SyncBuffer
	done    chan struct{}
	waitErr error
	earlier []string // logs of earlier runs (before restart)
}

var instanceSeq struct {
	sync.Mutex
	n int
}

// startCaddy writes caddyfile into a temporary directory, adapts it (a bad
// Caddyfile fails the test here), runs `caddy run --config <file> --adapter
// caddyfile` with HOME, XDG_CONFIG_HOME and XDG_DATA_HOME in that directory
// and env ("KEY=value") added, and waits until the admin endpoint answers,
// every HTTP listener accepts and Caddy logged "serving initial
// configuration". The instance is stopped at the test's cleanup (SIGINT,
// then SIGKILL after 10 s) and its logs printed if the test failed.
func startCaddy(t testing.TB, bin, caddyfile string, env ...string) *instance {
	t.Helper()
	instanceSeq.Lock()
	instanceSeq.n++
	name := fmt.Sprintf("caddy-%d", instanceSeq.n)
	instanceSeq.Unlock()

	dir := t.TempDir()
	in := &instance{Name: name, Dir: dir, ConfigPath: filepath.Join(dir, "Caddyfile"), t: t, bin: bin}
	if err := os.WriteFile(in.ConfigPath, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	in.env = append(childEnv(map[string]string{
		"HOME":            dir,
		"XDG_CONFIG_HOME": filepath.Join(dir, "config"),
		"XDG_DATA_HOME":   filepath.Join(dir, "data"),
		"XDG_CACHE_HOME":  filepath.Join(dir, "cache"),
	}), env...)

	in.adapt(t)
	t.Cleanup(func() {
		in.stop(t)
		if t.Failed() {
			t.Logf("%s (%s, admin %s, http %v) log:\n%s", in.Name, in.ConfigPath, in.AdminAddr, in.HTTPAddrs, tail(in.allLogs(), logTailLines))
		}
	})
	in.launch(t)
	return in
}

func childEnv(set map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok {
			env = append(env, kv)
		}
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// adapt runs `caddy adapt` and reads the admin and HTTP listen addresses
// from the JSON config.
func (in *instance) adapt(t testing.TB) {
	t.Helper()
	cmd := exec.Command(in.bin, "adapt", "--config", in.ConfigPath, "--adapter", "caddyfile")
	cmd.Dir, cmd.Env = in.Dir, in.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: caddy adapt: %v\n%s\nCaddyfile:\n%s", in.Name, err, stderr.String(), numbered(in.ConfigPath))
	}
	if err := json.Unmarshal(stdout.Bytes(), &in.Config); err != nil {
		t.Fatalf("%s: caddy adapt printed no JSON: %v\n%s", in.Name, err, stdout.String())
	}
	var cfg struct {
		Admin struct {
			Disabled bool   `json:"disabled"`
			Listen   string `json:"listen"`
		} `json:"admin"`
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string `json:"listen"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &cfg); err != nil {
		t.Fatalf("%s: adapted config: %v", in.Name, err)
	}
	if cfg.Admin.Disabled || cfg.Admin.Listen == "" {
		t.Fatalf("%s: the Caddyfile must set `admin 127.0.0.1:<port>` (clusterGlobals does)", in.Name)
	}
	in.AdminAddr = strings.TrimPrefix(cfg.Admin.Listen, "tcp/")
	for _, srv := range cfg.Apps.HTTP.Servers {
		for _, l := range srv.Listen {
			na, err := caddy.ParseNetworkAddress(l)
			if err != nil || na.IsUnixNetwork() || strings.HasPrefix(na.Network, "udp") {
				continue
			}
			host := na.Host
			if host == "" {
				host = "127.0.0.1"
			}
			for p := na.StartPort; p <= na.EndPort; p++ {
				in.HTTPAddrs = append(in.HTTPAddrs, net.JoinHostPort(host, strconv.Itoa(int(p))))
			}
		}
	}
}

// launch starts the process and waits until it is ready.
func (in *instance) launch(t testing.TB) {
	t.Helper()
	cmd := exec.Command(in.bin, "run", "--config", in.ConfigPath, "--adapter", "caddyfile")
	cmd.Dir, cmd.Env = in.Dir, in.env
	out := &testkit.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = childAttrs()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: starting caddy: %v", in.Name, err)
	}
	done := make(chan struct{})
	in.mu.Lock()
	in.cmd, in.out, in.done, in.waitErr = cmd, out, done, nil
	in.mu.Unlock()
	go func() {
		err := cmd.Wait()
		in.mu.Lock()
		in.waitErr = err
		in.mu.Unlock()
		close(done)
	}()
	in.waitReady(t)
}

func (in *instance) waitReady(t testing.TB) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(caddyReadyTimeout)
	for {
		select {
		case <-in.done:
			t.Fatalf("%s exited before it was ready (%v); its log follows", in.Name, in.exitErr())
		default:
		}
		if in.ready(client) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %v (admin %s, http %v); its log follows", in.Name, caddyReadyTimeout, in.AdminAddr, in.HTTPAddrs)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (in *instance) ready(client *http.Client) bool {
	if !strings.Contains(in.logs(), `"serving initial configuration"`) {
		return false
	}
	resp, err := client.Get("http://" + in.AdminAddr + "/config/")
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	for _, a := range in.HTTPAddrs {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// running tells whether the process is still there.
func (in *instance) running() bool {
	in.mu.Lock()
	done := in.done
	in.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

func (in *instance) exitErr() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.waitErr
}

// stop shuts the instance down gracefully (SIGINT; SIGKILL after 10 s).
// Stopping a stopped instance does nothing.
func (in *instance) stop(t testing.TB) {
	t.Helper()
	if !in.running() {
		return
	}
	if !testkit.Stop(in.cmd, in.done, os.Interrupt, caddyStopTimeout) {
		t.Errorf("%s did not stop within %v of SIGINT: killed", in.Name, caddyStopTimeout)
	}
}

// kill ends the instance at once with SIGKILL, as a crash would: no
// cleanup, locks held stay in Redis until they expire.
func (in *instance) kill(t testing.TB) {
	t.Helper()
	if !in.running() {
		return
	}
	in.cmd.Process.Kill()
	<-in.done
}

// restart stops the instance if it runs (gracefully) and starts it again
// with the same Caddyfile, directories and ports. Call kill first for a
// restart after a crash.
func (in *instance) restart(t testing.TB) {
	t.Helper()
	in.stop(t)
	in.mu.Lock()
	if in.out != nil {
		in.earlier = append(in.earlier, in.out.String())
	}
	in.mu.Unlock()
	in.launch(t)
}

// url is the address of path on the instance's first HTTP listener.
func (in *instance) url(path string) string {
	return "http://" + in.HTTPAddrs[0] + path
}

// get does GET path on the first HTTP listener, and returns the status and
// the body.
func (in *instance) get(t testing.TB, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(in.url(path))
	if err != nil {
		t.Fatalf("%s: GET %s: %v", in.Name, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: GET %s: reading the body: %v", in.Name, path, err)
	}
	return resp.StatusCode, string(body)
}

// admin calls the admin API: method and path (e.g. "GET",
// "/alipay_notify/outbox"), an optional JSON body; returns the status and
// the body.
func (in *instance) admin(t testing.TB, method, path string, body []byte) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+in.AdminAddr+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s: admin %s %s: %v", in.Name, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: admin %s %s: reading the body: %v", in.Name, method, path, err)
	}
	return resp.StatusCode, b
}

// instanceID is Caddy's instance UUID (data dir instance.uuid), written at
// the first storage cleaning; it names the instance in last_clean.json.
func (in *instance) instanceID(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(in.Dir, "data", "caddy", "instance.uuid"))
	if err != nil {
		t.Fatalf("%s: instance id: %v", in.Name, err)
	}
	return strings.TrimSpace(string(b))
}

// logs is what the current run printed (stdout and stderr, one JSON object
// a line when not on a terminal).
func (in *instance) logs() string {
	in.mu.Lock()
	out := in.out
	in.mu.Unlock()
	if out == nil {
		return ""
	}
	return out.String()
}

func (in *instance) allLogs() string {
	in.mu.Lock()
	parts := append([]string(nil), in.earlier...)
	in.mu.Unlock()
	for i := range parts {
		parts[i] += fmt.Sprintf("----- %s restarted -----\n", in.Name)
	}
	return strings.Join(parts, "") + in.logs()
}

// logEntry is one JSON log line of Caddy: "level", "ts" (Unix seconds),
// "logger", "msg", and the fields.
type logEntry map[string]any

func (e logEntry) str(k string) string { s, _ := e[k].(string); return s }

// time is the entry's "ts".
func (e logEntry) time() time.Time {
	f, _ := e["ts"].(float64)
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9))
}

// logEntries parses the current run's log lines (non-JSON lines skipped).
func (in *instance) logEntries() []logEntry {
	var entries []logEntry
	for _, line := range strings.Split(in.logs(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var e logEntry
		if json.Unmarshal([]byte(line), &e) == nil {
			entries = append(entries, e)
		}
	}
	return entries
}

// findLogs returns the entries of the current run with that msg (any msg
// when empty) for which match (if not nil) is true.
func (in *instance) findLogs(msg string, match func(logEntry) bool) []logEntry {
	var found []logEntry
	for _, e := range in.logEntries() {
		if (msg == "" || e.str("msg") == msg) && (match == nil || match(e)) {
			found = append(found, e)
		}
	}
	return found
}

// waitLog waits up to timeout for a log entry with that msg for which match
// (if not nil) is true, and returns the first one.
func (in *instance) waitLog(t testing.TB, timeout time.Duration, msg string, match func(logEntry) bool) logEntry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if found := in.findLogs(msg, match); len(found) > 0 {
			return found[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no log entry %q within %v; its log follows", in.Name, msg, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Small things

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) <= n {
		return s
	}
	return fmt.Sprintf("[... %d lines before]\n%s\n", len(lines)-n, strings.Join(lines[len(lines)-n:], "\n"))
}

func numbered(path string) string {
	b, _ := os.ReadFile(path)
	var out strings.Builder
	for i, l := range strings.Split(string(b), "\n") {
		fmt.Fprintf(&out, "%3d  %s\n", i+1, l)
	}
	return out.String()
}

// ---------------------------------------------------------------------------
// The smoke test

// TestClusterSharesRedisStorage starts a Redis and two Caddy instances on
// it, each serving `respond "ok"`, and proves that they share the storage:
// at startup Caddy's TLS app cleans the storage under the storage lock
// "storage_clean" and records it in last_clean.json with its instance id;
// the first instance writes that key (seen in Redis under the key_prefix),
// and the second one, reading it through its own storage, skips the
// cleaning and logs the first instance's id.
func TestClusterSharesRedisStorage(t *testing.T) {
	t.Parallel()
	began := time.Now()
	redisAddr := startRedis(t)
	t.Logf("redis-server ready in %v", time.Since(began).Round(time.Millisecond))
	bin := buildCaddy(t)
	rc := dialRedis(t, redisAddr)
	const prefix = "alipay-cluster"

	start := func() *instance {
		p := newCaddyPorts(t)
		return startCaddy(t, bin, clusterGlobals(p, redisAddr, prefix)+fmt.Sprintf(":%d {\n\trespond \"ok\"\n}\n", p.HTTP))
	}

	began = time.Now()
	a := start()
	t.Logf("%s ready in %v", a.Name, time.Since(began).Round(time.Millisecond))
	a.waitLog(t, 15*time.Second, "finished cleaning storage units", nil)
	idA := a.instanceID(t)

	var lastClean struct {
		TLS struct {
			Timestamp  time.Time `json:"timestamp"`
			InstanceID string    `json:"instance_id"`
		} `json:"tls"`
	}
	raw := rc.storageValue(t, prefix+"/last_clean.json")
	if raw == nil {
		t.Fatalf("no %s/last_clean.json in Redis after %s started; keys: %q", prefix, a.Name, rc.keys(t, "*"))
	}
	if err := json.Unmarshal(raw, &lastClean); err != nil {
		t.Fatalf("last_clean.json: %v: %s", err, raw)
	}
	if lastClean.TLS.InstanceID != idA {
		t.Fatalf("last_clean.json names instance %q, want %s's %q", lastClean.TLS.InstanceID, a.Name, idA)
	}

	began = time.Now()
	b := start()
	t.Logf("%s ready in %v", b.Name, time.Since(began).Round(time.Millisecond))
	skipped := b.waitLog(t, 15*time.Second, "storage cleaning happened too recently; skipping for now", nil)
	if got := skipped.str("instance"); got != idA {
		t.Errorf("%s skipped the cleaning because of instance %q, want %s's %q", b.Name, got, a.Name, idA)
	}
	if idB := b.instanceID(t); idB == idA {
		t.Errorf("both instances have the id %q: not two instances", idA)
	}
	if b.findLogs("cleaning storage unit", nil) != nil {
		t.Errorf("%s cleaned the storage again: it did not see %s's last_clean.json", b.Name, a.Name)
	}

	provisioned := "Provision Redis simple storage using address [" + redisAddr + "]"
	for _, in := range []*instance{a, b} {
		if in.findLogs(provisioned, nil) == nil {
			t.Errorf("%s did not log %q", in.Name, provisioned)
		}
		if code, body := in.get(t, "/"); code != http.StatusOK || body != "ok" {
			t.Errorf("%s: GET / = %d %q, want 200 \"ok\"", in.Name, code, body)
		}
	}

	// The storage module's layout: every key under key_prefix; the values
	// as strings, a directory index as sorted sets; the storage_clean lock
	// released.
	keys := rc.keys(t, "*")
	for _, k := range keys {
		if k != prefix && !strings.HasPrefix(k, prefix+"/") {
			t.Errorf("redis key %q is outside key_prefix %q", k, prefix)
		}
	}
	if typ := rc.do(t, "TYPE", prefix); typ != "zset" {
		t.Errorf("TYPE %s = %v, want zset (the module's index of the root directory)", prefix, typ)
	}
	if n := rc.do(t, "EXISTS", prefix+"/locks/storage_clean"); n != int64(0) {
		t.Errorf("the storage_clean lock is still held after both instances cleaned (EXISTS = %v)", n)
	}
	t.Logf("redis keys: %q; ./cmd/caddy built in %v", keys, buildTook.Round(time.Millisecond))
}
