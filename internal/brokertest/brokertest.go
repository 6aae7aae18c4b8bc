// Package brokertest starts real message brokers for tests: Mosquitto (one
// per test, on a free loopback port, in seconds) and RabbitMQ (slow to
// start: one per test process, or the one named by the environment
// variable AMQPEnv, which .ci/run starts once for every package).
//
// A missing broker program skips the test, or fails it when the CI
// environment variable is set (testtool.Look).
package brokertest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
)

// AMQPEnv names the environment variable that gives the URL of a running
// RabbitMQ to use instead of starting one.
const AMQPEnv = "ZSYNCPIPE_TEST_AMQP"

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitPort waits until something listens on port.
func waitPort(port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on port %d after %v", port, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Mosquitto is a mosquitto process started by a test, with persistence on
// so that sessions and queued messages survive Restart.
type Mosquitto struct {
	// URL is "mqtt://127.0.0.1:<port>".
	URL string
	// Port is the listening port.
	Port int

	t    testing.TB
	bin  string
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartMosquitto starts mosquitto on a free port; it is stopped when the
// test ends.
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	m := &Mosquitto{t: t, bin: testtool.Look(t, "mosquitto", "mosquitto"), dir: t.TempDir(), Port: FreePort(t)}
	m.URL = "mqtt://127.0.0.1:" + strconv.Itoa(m.Port)
	user := ""
	if os.Geteuid() == 0 {
		// As root mosquitto switches to user mosquitto, which may not
		// write in the test's directory.
		user = "user root\n"
	}
	conf := fmt.Sprintf(user+`listener %d 127.0.0.1
allow_anonymous true
persistence true
persistence_location %s/
autosave_interval 1
max_queued_messages 1000000
max_inflight_messages 100
log_dest file %s/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
`, m.Port, m.dir, m.dir)
	if err := os.WriteFile(filepath.Join(m.dir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m.start()
	t.Cleanup(func() {
		m.Stop()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
			t.Logf("mosquitto log:\n%s", log)
		}
	})
	return m
}

func (m *Mosquitto) start() {
	m.t.Helper()
	cmd := exec.Command(m.bin, "-c", filepath.Join(m.dir, "mosquitto.conf"))
	cmd.SysProcAttr = ownGroup()
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	m.mu.Lock()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	if err := waitPort(m.Port, 10*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
		m.t.Fatalf("mosquitto: %v\n%s", err, log)
	}
}

// Stop stops mosquitto (SIGTERM: it saves its state) and waits for it.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart stops mosquitto and starts it again on the same port.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	m.Stop()
	m.start()
}

// RabbitMQ is a rabbitmq-server node started in a directory of its own.
type RabbitMQ struct {
	// URL is "amqp://guest:guest@127.0.0.1:<port>/".
	URL string
	// Port is the AMQP port.
	Port int

	dir  string
	env  []string
	bin  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// rabbitBin finds rabbitmq-server's own script, which runs as the calling
// user (the /usr/sbin wrapper switches to the rabbitmq user).
func rabbitBin() (string, error) {
	m, _ := filepath.Glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server")
	if len(m) > 0 {
		return m[len(m)-1], nil
	}
	return exec.LookPath("rabbitmq-server")
}

// StartRabbitMQ starts a RabbitMQ node with its data in dir on a free
// port and waits (up to two minutes) until it accepts connections. The
// default user guest/guest may connect over loopback.
func StartRabbitMQ(dir string) (*RabbitMQ, error) {
	bin, err := rabbitBin()
	if err != nil {
		return nil, err
	}
	// Up to three tries, each on new ports in a fresh directory: a port
	// found free may be taken before the node binds it (see waitAMQP).
	for try := 1; ; try++ {
		d := filepath.Join(dir, strconv.Itoa(try))
		r, err := startRabbitMQ(bin, d)
		if err == nil || try == 3 {
			return r, err
		}
	}
}

func startRabbitMQ(bin, dir string) (*RabbitMQ, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	dist := l2.Addr().(*net.TCPAddr).Port
	l2.Close()
	for _, d := range []string{"mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	conf := fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\nloopback_users = none\n", port)
	if err := os.WriteFile(filepath.Join(dir, "rabbit.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "plugins"), []byte("[].\n"), 0o644); err != nil {
		return nil, err
	}
	node := fmt.Sprintf("zsyncpipe%d@localhost", port)
	r := &RabbitMQ{
		URL: fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port), Port: port, dir: dir, bin: bin,
		env: append(os.Environ(),
			"HOME="+dir,
			"RABBITMQ_NODENAME="+node,
			"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
			"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
			"RABBITMQ_DIST_PORT="+strconv.Itoa(dist),
			"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
			"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
			"RABBITMQ_LOGS="+filepath.Join(dir, "log", "rabbit.log"),
			"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbit"),
			"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
			"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "plugins"),
			"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
			"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "env"),
			"RABBITMQ_FEATURE_FLAGS_FILE="+filepath.Join(dir, "mnesia", "feature_flags"),
		),
	}
	if err := r.start(); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

func (r *RabbitMQ) start() error {
	cmd := exec.Command(r.bin)
	cmd.Env = r.env
	cmd.Dir = r.dir
	out, err := os.Create(filepath.Join(r.dir, "stdout.log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = ownGroup()
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start rabbitmq-server: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(done) }()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	ch := make(chan error, 1)
	go func() { ch <- waitAMQP(r.Port, 2*time.Minute, done) }()
	select {
	case err := <-ch:
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(r.dir, "stdout.log"))
			return fmt.Errorf("rabbitmq: %w\n%s", err, log)
		}
		return nil
	case <-done:
		log, _ := os.ReadFile(filepath.Join(r.dir, "stdout.log"))
		return fmt.Errorf("rabbitmq-server exited\n%s", log)
	}
}

// waitAMQP waits until an AMQP 0-9-1 server answers on port (see
// amqpAnswers), or done is closed, or timeout passes. Something else may
// listen there first: the free port chosen for the node can be taken
// before the node binds it, by the Erlang distribution listener of
// another test binary's node (TestFlowAMQP once connected to one and got
// "Exception (501) EOF", and this node then failed to start).
func waitAMQP(port int, timeout time.Duration, done <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for !amqpAnswers(port) {
		if time.Now().After(deadline) {
			return fmt.Errorf("no AMQP server answers on port %d after %v", port, timeout)
		}
		select {
		case <-done:
			return fmt.Errorf("the node exited before it answered on port %d", port)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// amqpAnswers reports whether an AMQP 0-9-1 server answers on port: it
// sends the protocol header, to which a broker replies with a method
// frame (Connection.Start: first byte 1).
func amqpAnswers(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		return false
	}
	var b [1]byte
	_, err = io.ReadFull(c, b[:])
	return err == nil && b[0] == 1
}

// Stop stops the node (SIGTERM to its process group) and waits for it.
func (r *RabbitMQ) Stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = signalGroup(cmd.Process, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = signalGroup(cmd.Process, syscall.SIGKILL)
		<-done
	}
}

// Restart stops the node and starts it again with the same data and port:
// durable queues and persistent messages survive.
func (r *RabbitMQ) Restart() error {
	r.Stop()
	return r.start()
}

var shared struct {
	once sync.Once
	r    *RabbitMQ
	url  string
	err  error
	dir  string
}

// AMQP returns the URL of a RabbitMQ for the test: the one named by
// AMQPEnv, or one started once for the test process (stop it with
// StopShared from TestMain). Tests sharing it must use exchange and queue
// names of their own.
func AMQP(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(AMQPEnv); u != "" {
		return u
	}
	testtool.Look(t, "rabbitmq-server", "rabbitmq-server")
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "zsyncpipe-rabbitmq-")
		if shared.err != nil {
			return
		}
		shared.r, shared.err = StartRabbitMQ(shared.dir)
		if shared.err == nil {
			shared.url = shared.r.URL
		}
	})
	if shared.err != nil {
		t.Fatalf("rabbitmq: %v", shared.err)
	}
	return shared.url
}

// StopShared stops the RabbitMQ that AMQP started, if any, and removes its
// data. Call it from TestMain after m.Run.
func StopShared() {
	if shared.r != nil {
		shared.r.Stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
}

// Context returns a context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
