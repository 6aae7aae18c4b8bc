// Package broker publishes and receives Sarracenia v03 messages over a
// message broker: AMQP 0-9-1 (RabbitMQ, with github.com/rabbitmq/amqp091-go),
// MQTT v5 (Mosquitto and others, with github.com/eclipse/paho.golang's
// autopaho), or an MQTT broker embedded in the process
// (github.com/mochi-mqtt/server/v2).
//
// The defaults are sr3's, on both sides, so that a zsyncpipe publisher, a
// zsyncpipe subscriber and sr3 find each other: topic exchange "xpublic",
// topic prefix "v03", durable queues named "q_<user>.<component>.<config>.<share>",
// 25 messages in flight, persistent messages, publisher confirms on AMQP and
// QoS 1 with shared subscriptions and persistent sessions on MQTT.
//
// Connections survive broker restarts: they reconnect with exponential
// backoff; Publish returns only once the broker has taken the message (a
// confirm on AMQP, a PUBACK on MQTT), re-sending it after a reconnection
// otherwise; a subscriber's unacknowledged messages are redelivered by the
// broker.
package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/zsyncpipe/zsyncpipe/v03"
)

// ErrClosed is returned by a Conn that was closed.
var ErrClosed = errors.New("broker connection closed")

// ErrURL is returned (wrapped) for a broker URL that cannot be used.
var ErrURL = errors.New("invalid broker URL")

// Defaults of Options.
const (
	DefaultPrefetch      = 25 // sr3's prefetch
	DefaultSessionExpiry = 24 * time.Hour
	DefaultMaxBackoff    = 30 * time.Second
	// DefaultEmbeddedAddr is where "embedded" listens.
	DefaultEmbeddedAddr = "127.0.0.1:1883"
)

// Options configure a Conn. The zero value gives sr3's defaults.
type Options struct {
	// Exchange is the topic exchange (AMQP) or first topic level (MQTT);
	// default "xpublic".
	Exchange string
	// TopicPrefix follows the exchange in topics; default "v03".
	TopicPrefix string
	// Queue is the subscriber's queue (AMQP) or shared subscription group
	// (MQTT); required to Subscribe. See QueueName.
	Queue string
	// Subtopics select what a subscriber receives, below the prefix, as
	// slash-separated patterns where "*" matches one level and "#" any
	// number; default {"#"}.
	Subtopics []string
	// Prefetch bounds the messages delivered and not yet acknowledged;
	// default 25.
	Prefetch int
	// DeadLetterExchange, when set, is declared as the queue's
	// x-dead-letter-exchange on AMQP: rejected messages go there. The
	// queue must be new or already have it.
	DeadLetterExchange string
	// ClientID is the MQTT client identifier, which names its persistent
	// session; default Queue+"_i01" (sr3's naming for instance 1).
	ClientID string
	// SessionExpiry is how long an MQTT broker keeps a disconnected
	// subscriber's session and messages; default 24 h.
	SessionExpiry time.Duration
	// MaxBackoff bounds the wait between reconnection attempts; default
	// 30 s.
	MaxBackoff time.Duration
	// Logf, if set, receives connection events.
	Logf func(format string, args ...any)
}

func (o *Options) defaults() {
	if o.Exchange == "" {
		o.Exchange = v03.Exchange
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = v03.TopicPrefix
	}
	if len(o.Subtopics) == 0 {
		o.Subtopics = []string{"#"}
	}
	if o.Prefetch <= 0 {
		o.Prefetch = DefaultPrefetch
	}
	if o.SessionExpiry <= 0 {
		o.SessionExpiry = DefaultSessionExpiry
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.ClientID == "" && o.Queue != "" {
		o.ClientID = o.Queue + "_i01"
	}
}

func (o *Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// QueueName returns sr3's queue name, "q_<user>.<component>.<config>.<share>",
// with user "anonymous" when empty.
func QueueName(user, component, config, share string) string {
	if user == "" {
		user = "anonymous"
	}
	return "q_" + user + "." + component + "." + config + "." + share
}

// User returns the user name of a broker URL, "anonymous" when it has none
// (sr3's rule).
func User(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil || u.User.Username() == "" {
		return "anonymous"
	}
	return u.User.Username()
}

// Delivery is one received message. Exactly one of Ack and Reject should be
// called, once the message is dealt with.
type Delivery struct {
	// Topic is the AMQP routing key or MQTT topic.
	Topic string
	// Body is the message body.
	Body []byte
	// ContentType is the body's type, when the sender set one.
	ContentType string
	// Redelivered reports that the broker delivered it before (AMQP) or
	// that it is a duplicate (MQTT).
	Redelivered bool

	once   sync.Once
	ack    func() error
	reject func() error
}

// Ack tells the broker that the message is done with.
func (d *Delivery) Ack() error {
	err := ErrClosed
	d.once.Do(func() { err = d.ack() })
	return err
}

// Reject tells the broker that the message is bad: AMQP dead-letters it
// (or drops it when the queue has no dead-letter exchange), MQTT
// acknowledges it with reason code 0x80 (unspecified error).
func (d *Delivery) Reject() error {
	err := ErrClosed
	d.once.Do(func() { err = d.reject() })
	return err
}

// Conn is a connection to a broker that publishes and subscribes. Its
// methods are safe for concurrent use.
type Conn interface {
	// Publish sends body, a v03 message about relPath, on the topic built
	// from relPath, and returns once the broker has taken it.
	Publish(ctx context.Context, relPath string, body []byte) error
	// Subscribe declares the queue and its bindings (AMQP) or the shared
	// subscription (MQTT) and returns the messages as they arrive, until
	// ctx ends or the Conn is closed.
	Subscribe(ctx context.Context) (<-chan *Delivery, error)
	// Close disconnects.
	Close() error
}

// Dial connects to the broker at rawURL: amqp:// or amqps:// for AMQP 0-9-1,
// mqtt://, mqtts://, tcp:// or ssl:// for MQTT v5. "embedded" (or
// "embedded://host:port") starts an MQTT broker in the process, on
// DefaultEmbeddedAddr by default, and connects to it; it stops on Close.
func Dial(ctx context.Context, rawURL string, opts Options) (Conn, error) {
	opts.defaults()
	if rawURL == "embedded" {
		rawURL = "embedded://" + DefaultEmbeddedAddr
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrURL, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "amqp", "amqps":
		return dialAMQP(ctx, u, opts)
	case "mqtt", "mqtts", "tcp", "ssl", "tls":
		return dialMQTT(ctx, u, opts)
	case "embedded":
		return dialEmbedded(ctx, u, opts)
	}
	return nil, fmt.Errorf("%w: %q: scheme must be amqp, amqps, mqtt, mqtts or embedded", ErrURL, redact(u))
}

// redact returns u without its password, for messages.
func redact(u *url.URL) string {
	return u.Redacted()
}

// backoff returns the wait before reconnection attempt n (1, 2, …):
// 100 ms doubling up to max.
func backoff(n int, max time.Duration) time.Duration {
	d := 100 * time.Millisecond
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// DefaultShare returns the share part of a default queue name for a
// subscriber writing into dir: "<user>_<host>_<8 hex digits of dir>", so
// that processes on one host writing one directory share a queue (and
// split its work) and any other subscriber gets its own.
func DefaultShare(dir string) string {
	user := os.Getenv("USER")
	if user == "" {
		user = "user"
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "host"
	}
	host, _, _ = strings.Cut(host, ".")
	sum := sha256.Sum256([]byte(dir))
	return user + "_" + host + "_" + hex.EncodeToString(sum[:4])
}
