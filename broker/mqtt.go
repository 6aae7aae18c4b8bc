package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/zsyncpipe/zsyncpipe/v03"
)

// mqttConn is a Conn over MQTT v5 with autopaho, which reconnects by
// itself. A subscriber's session is persistent (clean start false, session
// expiry Options.SessionExpiry) under the client id Options.ClientID, so
// QoS 1 messages that arrive while it is away wait for it.
type mqttConn struct {
	opts Options
	name string
	cm   *autopaho.ConnectionManager
	stop context.CancelFunc

	mu         sync.Mutex
	out        chan *Delivery // set by Subscribe
	subscribed bool
}

func dialMQTT(ctx context.Context, u *url.URL, opts Options) (*mqttConn, error) {
	c := &mqttConn{opts: opts, name: redact(u)}
	server := *u
	server.User = nil
	switch server.Scheme {
	case "mqtts":
		server.Scheme = "tls"
	}
	clientID := opts.ClientID
	expiry := uint32(opts.SessionExpiry / time.Second)
	if opts.Queue == "" {
		// A publisher only: a session of its own that ends with it.
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		clientID = "zsyncpipe_pub_" + hex.EncodeToString(b)
		expiry = 0
	}
	receiveMax := uint16(min(opts.Prefetch, 65535))
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{&server},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         expiry,
		ConnectTimeout:                10 * time.Second,
		ReconnectBackoff: func(attempt int) time.Duration {
			return backoff(attempt+1, opts.MaxBackoff)
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			c.mu.Lock()
			sub := c.subscribed
			c.mu.Unlock()
			if sub {
				go func() {
					if err := c.subscribe(context.Background()); err != nil {
						opts.logf("broker: resubscribe: %v", err)
					}
				}()
			}
		},
		OnConnectError: func(err error) { opts.logf("broker: connect to %s: %v", c.name, err) },
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if cp.Properties == nil {
				cp.Properties = &paho.ConnectProperties{}
			}
			cp.Properties.ReceiveMaximum = &receiveMax
			return cp, nil
		},
		ClientConfig: paho.ClientConfig{
			ClientID:                   clientID,
			EnableManualAcknowledgment: true,
			OnPublishReceived:          []func(paho.PublishReceived) (bool, error){c.received},
		},
	}
	if u.User != nil {
		pw, _ := u.User.Password()
		cfg.ConnectUsername = u.User.Username()
		cfg.ConnectPassword = []byte(pw)
	}
	runCtx, stop := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(runCtx, cfg)
	if err != nil {
		stop()
		return nil, fmt.Errorf("connect to %s: %w", c.name, err)
	}
	c.cm, c.stop = cm, stop
	waitCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cm.AwaitConnection(waitCtx); err != nil {
		stop()
		return nil, fmt.Errorf("connect to %s: %w", c.name, err)
	}
	return c, nil
}

// received hands an arriving message to the subscriber. The broker sends
// at most Prefetch unacknowledged messages (the CONNECT's receive
// maximum) and out holds that many, so this does not block the client.
func (c *mqttConn) received(pr paho.PublishReceived) (bool, error) {
	c.mu.Lock()
	out := c.out
	c.mu.Unlock()
	if out == nil {
		return false, nil
	}
	p, cl := pr.Packet, pr.Client
	ct := ""
	if p.Properties != nil {
		ct = p.Properties.ContentType
	}
	ack := func() error { return cl.Ack(p) }
	out <- &Delivery{Topic: p.Topic, Body: p.Payload, ContentType: ct, Redelivered: p.Duplicate(), ack: ack, reject: ack}
	return true, nil
}

// filter returns the shared-subscription filter for a subtopic pattern:
// $share/<queue>/<exchange>/<prefix>/<sub>, "*" becoming "+".
func (c *mqttConn) filter(sub string) string {
	levels := []string{"$share", c.opts.Queue}
	if c.opts.Exchange != "" {
		levels = append(levels, c.opts.Exchange)
	}
	if c.opts.TopicPrefix != "" {
		levels = append(levels, strings.Split(c.opts.TopicPrefix, ".")...)
	}
	for _, l := range strings.Split(strings.Trim(sub, "/"), "/") {
		if l == "*" {
			l = "+"
		}
		levels = append(levels, l)
	}
	return strings.Join(levels, "/")
}

func (c *mqttConn) subscribe(ctx context.Context) error {
	s := &paho.Subscribe{}
	for _, sub := range c.opts.Subtopics {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: c.filter(sub), QoS: 1})
	}
	ack, err := c.cm.Subscribe(ctx, s)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", c.opts.Queue, err)
	}
	for i, rc := range ack.Reasons {
		if rc >= 0x80 {
			return fmt.Errorf("subscribe %s: refused with reason 0x%02x", s.Subscriptions[i].Topic, rc)
		}
	}
	return nil
}

// Subscribe makes the shared subscription $share/<queue>/<exchange>/v03/#
// with QoS 1; it is made again after every reconnection.
func (c *mqttConn) Subscribe(ctx context.Context) (<-chan *Delivery, error) {
	if c.opts.Queue == "" {
		return nil, fmt.Errorf("subscribe: no queue name: %w", ErrURL)
	}
	out := make(chan *Delivery, c.opts.Prefetch)
	c.mu.Lock()
	c.out, c.subscribed = out, true
	c.mu.Unlock()
	if err := c.subscribe(ctx); err != nil {
		return nil, err
	}
	res := make(chan *Delivery)
	go func() {
		defer close(res)
		for {
			select {
			case d := <-out:
				select {
				case res <- d:
				case <-ctx.Done():
					return
				case <-c.cm.Done():
					return
				}
			case <-ctx.Done():
				return
			case <-c.cm.Done():
				return
			}
		}
	}()
	return res, nil
}

// Publish sends body with QoS 1 on <exchange>/v03/<dirs of relPath> and
// waits for the broker's PUBACK; after a lost connection it waits for the
// next one and sends again.
func (c *mqttConn) Publish(ctx context.Context, relPath string, body []byte) error {
	topic := v03.MQTTTopic(c.opts.Exchange, strings.ReplaceAll(c.opts.TopicPrefix, ".", "/"), relPath)
	p := &paho.Publish{QoS: 1, Topic: topic, Payload: body,
		Properties: &paho.PublishProperties{ContentType: v03.ContentType}}
	for attempt := 1; ; attempt++ {
		if err := c.cm.AwaitConnection(ctx); err != nil {
			return fmt.Errorf("publish %s: %w", relPath, err)
		}
		r, err := c.cm.Publish(ctx, p)
		if err == nil && (r == nil || r.ReasonCode < 0x80) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("refused with reason 0x%02x", r.ReasonCode)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("publish %s: %w", relPath, ctx.Err())
		}
		wait := backoff(attempt, c.opts.MaxBackoff)
		c.opts.logf("broker: publish %s: %v; sending again in %v", relPath, err, wait)
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("publish %s: %w", relPath, err)
		}
	}
}

// Close disconnects; the session stays on the broker for SessionExpiry.
func (c *mqttConn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.cm.Disconnect(ctx)
	c.stop()
	if err != nil && !strings.Contains(err.Error(), "not connected") {
		return err
	}
	return nil
}
