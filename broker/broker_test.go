package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/zsyncpipe/zsyncpipe/internal/brokertest"
	"github.com/zsyncpipe/zsyncpipe/internal/testtool"
	"github.com/zsyncpipe/zsyncpipe/v03"
)

func TestMain(m *testing.M) {
	code := m.Run()
	brokertest.StopShared()
	os.Exit(code)
}

// unique returns a name no other test uses on a shared broker.
func unique(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func testOptions(t *testing.T) Options {
	return Options{
		Exchange:   unique("xtest_"),
		Queue:      QueueName("guest", "subscribe", "test", unique("s")),
		MaxBackoff: 500 * time.Millisecond,
		Logf:       t.Logf,
	}
}

func dial(t *testing.T, url string, opts Options) Conn {
	t.Helper()
	c, err := Dial(brokertest.Context(t, time.Minute), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func collectSome(ctx context.Context, in <-chan *Delivery, want int) map[string]int {
	got := map[string]int{}
	for len(got) < want {
		select {
		case d, ok := <-in:
			if !ok {
				return got
			}
			got[string(d.Body)]++
			d.Ack()
		case <-ctx.Done():
			return got
		}
	}
	return got
}

// roundTrip subscribes, publishes n messages under a/b/, and checks that
// every one arrives with the topic sr3 would give it and the JSON content
// type.
func roundTrip(t *testing.T, url string, opts Options, wantTopic string) {
	ctx := brokertest.Context(t, time.Minute)
	sub := dial(t, url, opts)
	in, err := sub.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pubOpts := opts
	pubOpts.Queue = ""
	pub := dial(t, url, pubOpts)
	const n = 50
	for i := range n {
		if err := pub.Publish(ctx, "a/b/file", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		select {
		case d := <-in:
			if d.Topic != wantTopic || d.ContentType != v03.ContentType {
				t.Fatalf("topic %q content type %q, want %q %q", d.Topic, d.ContentType, wantTopic, v03.ContentType)
			}
			seen[string(d.Body)] = true
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatalf("received %d of %d", i, n)
		}
	}
	for i := range n {
		if want := fmt.Sprintf(`{"n":%d}`, i); !seen[want] {
			t.Errorf("message %s not received", want)
		}
	}
}

func TestMQTTRoundTrip(t *testing.T) {
	m := brokertest.StartMosquitto(t)
	opts := testOptions(t)
	roundTrip(t, m.URL, opts, opts.Exchange+"/v03/a/b")
}

func TestAMQPRoundTrip(t *testing.T) {
	url := brokertest.AMQP(t)
	roundTrip(t, url, testOptions(t), "v03.a.b")
}

func TestEmbeddedRoundTrip(t *testing.T) {
	opts := testOptions(t)
	e, err := StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	roundTrip(t, e.URL(), opts, opts.Exchange+"/v03/a/b")
	// "embedded://addr" starts a broker of its own, stopped by Close.
	pubOpts := opts
	pubOpts.Queue = ""
	c, err := Dial(brokertest.Context(t, time.Minute), fmt.Sprintf("embedded://127.0.0.1:%d", brokertest.FreePort(t)), pubOpts)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(brokertest.Context(t, time.Minute), "x", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAMQPRedelivery: a message received and not acknowledged comes back
// to the next subscriber of the durable queue, marked redelivered; a
// rejected one goes to the dead-letter exchange.
func TestAMQPRedelivery(t *testing.T) {
	url := brokertest.AMQP(t)
	ctx := brokertest.Context(t, time.Minute)
	opts := testOptions(t)
	opts.DeadLetterExchange = unique("xdead_")

	// A queue on the dead-letter exchange, to see rejected messages.
	dlOpts := testOptions(t)
	dlOpts.Exchange = opts.DeadLetterExchange
	dl := dial(t, url, dlOpts)
	dlIn, err := dl.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}

	s1, err := Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	in1, err := s1.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pubOpts := opts
	pubOpts.Queue = ""
	pub := dial(t, url, pubOpts)
	for _, b := range []string{"keep", "bad"} {
		if err := pub.Publish(ctx, "d/f", []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		d := <-in1
		if string(d.Body) == "bad" {
			if err := d.Reject(); err != nil {
				t.Fatal(err)
			}
		}
		// "keep" is neither acked nor rejected.
	}
	s1.Close()

	s2 := dial(t, url, opts)
	in2, err := s2.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-in2:
		if string(d.Body) != "keep" || !d.Redelivered {
			t.Fatalf("got %q redelivered=%v, want keep redelivered", d.Body, d.Redelivered)
		}
		d.Ack()
	case <-ctx.Done():
		t.Fatal("unacknowledged message not redelivered")
	}
	select {
	case d := <-dlIn:
		if string(d.Body) != "bad" {
			t.Fatalf("dead letter %q", d.Body)
		}
		d.Ack()
	case <-ctx.Done():
		t.Fatal("rejected message not dead-lettered")
	}
}

// competing starts three subscribers on one queue, publishes many
// messages, and checks that together they receive every one and that each
// does part of the work.
func competing(t *testing.T, url string, opts Options) {
	ctx := brokertest.Context(t, 2*time.Minute)
	const n, subs = 300, 3
	var mu sync.Mutex
	got := map[string]int{}
	per := make([]int, subs)
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	subCtx, stop := context.WithCancel(ctx)
	defer stop()
	for i := range subs {
		o := opts
		o.ClientID = fmt.Sprintf("%s_i%02d", opts.Queue, i+1)
		c := dial(t, url, o)
		in, err := c.Subscribe(subCtx)
		if err != nil {
			t.Fatal(err)
		}
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			for d := range in {
				time.Sleep(time.Millisecond) // some work, so that all share it
				mu.Lock()
				got[string(d.Body)]++
				per[i]++
				done := len(got) == n
				mu.Unlock()
				d.Ack()
				if done {
					stop()
				}
			}
		}()
	}
	ready.Wait()
	pubOpts := opts
	pubOpts.Queue = ""
	pub := dial(t, url, pubOpts)
	for i := range n {
		if err := pub.Publish(ctx, fmt.Sprintf("d%d/f", i%7), fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if len(got) != n {
		t.Fatalf("received %d distinct of %d", len(got), n)
	}
	for i, c := range per {
		if c == 0 {
			t.Errorf("subscriber %d received nothing: %v", i, per)
		}
	}
	t.Logf("split between subscribers: %v", per)
}

func TestAMQPCompeting(t *testing.T) { competing(t, brokertest.AMQP(t), testOptions(t)) }

func TestMQTTCompeting(t *testing.T) {
	competing(t, brokertest.StartMosquitto(t).URL, testOptions(t))
}

// TestMQTTBrokerRestart restarts mosquitto while a publisher sends: every
// message published (Publish returned nil) reaches the subscriber, whose
// persistent session kept its subscription and queued messages.
func TestMQTTBrokerRestart(t *testing.T) {
	m := brokertest.StartMosquitto(t)
	ctx := brokertest.Context(t, 2*time.Minute)
	opts := testOptions(t)
	sub := dial(t, m.URL, opts)
	in, err := sub.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pubOpts := opts
	pubOpts.Queue = ""
	pub := dial(t, m.URL, pubOpts)
	const n = 200
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			if err := pub.Publish(ctx, "r/f", fmt.Appendf(nil, "%d", i)); err != nil {
				errc <- err
				return
			}
			if i == n/2 {
				m.Restart()
				// Mosquitto 2.0 does not restore shared subscriptions
				// from its persistence file: what is published before the
				// subscriber has reconnected and subscribed again is lost
				// (RabbitMQ's durable queue keeps it: TestAMQPBrokerRestart).
				time.Sleep(time.Second)
			}
		}
		errc <- nil
	}()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	got := collectSome(cctx, in, n)
	if len(got) < n {
		var missing []string
		for i := range n {
			if got[fmt.Sprint(i)] == 0 {
				missing = append(missing, fmt.Sprint(i))
			}
		}
		t.Fatalf("missing %v", missing)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) != n {
		t.Fatalf("%d distinct messages", len(keys))
	}
}

func TestDialErrors(t *testing.T) {
	ctx := brokertest.Context(t, 30*time.Second)
	for _, u := range []string{"http://h/", "::", "ftp://x"} {
		if _, err := Dial(ctx, u, Options{}); err == nil {
			t.Errorf("Dial(%q) succeeded", u)
		}
	}
	// Nothing listens there: the first connection fails at once.
	port := brokertest.FreePort(t)
	if _, err := Dial(ctx, fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port), Options{}); err == nil {
		t.Error("Dial to a closed port succeeded")
	}
}

func TestNames(t *testing.T) {
	if got := QueueName("", "subscribe", "zsyncpipe", "u_h_1"); got != "q_anonymous.subscribe.zsyncpipe.u_h_1" {
		t.Error(got)
	}
	if got := User("amqp://bunny:pw@h/"); got != "bunny" {
		t.Error(got)
	}
	if got := User("mqtt://h/"); got != "anonymous" {
		t.Error(got)
	}
	a, b := DefaultShare("/data/a"), DefaultShare("/data/b")
	if a == b || a != DefaultShare("/data/a") {
		t.Errorf("DefaultShare: %q %q", a, b)
	}
	c := &amqpConn{opts: Options{TopicPrefix: "v03"}}
	if got := c.bindingKey("a/*/#"); got != "v03.a.*.#" {
		t.Error(got)
	}
	mc := &mqttConn{opts: Options{Queue: "q", Exchange: "xpublic", TopicPrefix: "v03"}}
	if got := mc.filter("a/*/#"); got != "$share/q/xpublic/v03/a/+/#" {
		t.Error(got)
	}
}

// TestAMQPBrokerRestart restarts RabbitMQ (an instance of its own) while a
// publisher sends: the durable queue and persistent messages survive, the
// publisher re-sends what was not confirmed, the subscriber reconnects, and
// every message published arrives.
func TestAMQPBrokerRestart(t *testing.T) {
	testtool.Look(t, "rabbitmq-server", "rabbitmq-server")
	r, err := brokertest.StartRabbitMQ(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	ctx := brokertest.Context(t, 3*time.Minute)
	opts := testOptions(t)
	sub := dial(t, r.URL, opts)
	in, err := sub.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pubOpts := opts
	pubOpts.Queue = ""
	pub := dial(t, r.URL, pubOpts)
	const n = 200
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			if err := pub.Publish(ctx, "r/f", fmt.Appendf(nil, "%d", i)); err != nil {
				errc <- err
				return
			}
			if i == n/2 {
				if err := r.Restart(); err != nil {
					errc <- err
					return
				}
			}
		}
		errc <- nil
	}()
	got := collectSome(ctx, in, n)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(got) < n {
		t.Fatalf("received %d of %d distinct messages", len(got), n)
	}
}
