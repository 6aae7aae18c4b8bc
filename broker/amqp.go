package broker

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/zsyncpipe/zsyncpipe/v03"
)

// amqpConn is a Conn over AMQP 0-9-1. One connection carries a publishing
// channel in confirm mode and, once Subscribe is called, a consuming
// channel; both are rebuilt after the connection is lost.
type amqpConn struct {
	url  string
	name string // url without password, for messages
	opts Options

	done      chan struct{} // closed by Close
	closeOnce sync.Once

	mu   sync.Mutex // guards conn and pub
	conn *amqp.Connection
	pub  *amqp.Channel
}

func dialAMQP(ctx context.Context, u *url.URL, opts Options) (*amqpConn, error) {
	c := &amqpConn{url: u.String(), name: redact(u), opts: opts, done: make(chan struct{})}
	c.mu.Lock()
	defer c.mu.Unlock()
	conn, err := c.connectLocked(ctx, false)
	if err != nil {
		return nil, err
	}
	// Declared now so that subscribers (sr3's do not declare exchanges)
	// can bind to it before the first message.
	c.declareExchange(conn)
	return c, nil
}

// connectLocked returns a live connection, dialling (again) when there is
// none; with retry it keeps trying, with backoff, until ctx ends or the
// Conn is closed.
func (c *amqpConn) connectLocked(ctx context.Context, retry bool) (*amqp.Connection, error) {
	for attempt := 1; ; attempt++ {
		select {
		case <-c.done:
			return nil, ErrClosed
		default:
		}
		if c.conn != nil && !c.conn.IsClosed() {
			return c.conn, nil
		}
		conn, err := amqp.DialConfig(c.url, amqp.Config{
			Heartbeat: 10 * time.Second,
			Locale:    "en_US",
			Dial:      amqp.DefaultDial(10 * time.Second),
			Properties: amqp.Table{
				"product": "zsyncpipe",
			},
		})
		if err == nil {
			if attempt > 1 {
				c.opts.logf("broker: reconnected to %s", c.name)
			}
			c.conn, c.pub = conn, nil
			return conn, nil
		}
		err = fmt.Errorf("connect to %s: %w", c.name, err)
		if !retry {
			return nil, err
		}
		wait := backoff(attempt, c.opts.MaxBackoff)
		c.opts.logf("broker: %v; retrying in %v", err, wait)
		if err := c.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

func (c *amqpConn) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return ErrClosed
	case <-t.C:
		return nil
	}
}

// declareExchange declares the topic exchange as sr3 does (durable, not
// auto-deleted) on a channel of its own: a user without the right to
// declare gets a closed channel, which must not be the one used after.
func (c *amqpConn) declareExchange(conn *amqp.Connection) {
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	if err := ch.ExchangeDeclare(c.opts.Exchange, "topic", true, false, false, false, nil); err != nil {
		c.opts.logf("broker: declare exchange %s: %v (continuing)", c.opts.Exchange, err)
	}
}

// publisher returns the publishing channel, (re)opening it as needed.
func (c *amqpConn) publisher(ctx context.Context) (*amqp.Channel, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for attempt := 1; ; attempt++ {
		if c.pub != nil && !c.pub.IsClosed() {
			return c.pub, nil
		}
		conn, err := c.connectLocked(ctx, true)
		if err != nil {
			return nil, err
		}
		c.declareExchange(conn)
		ch, err := conn.Channel()
		if err == nil {
			if err = ch.Confirm(false); err == nil {
				c.pub = ch
				return ch, nil
			}
			ch.Close()
		}
		c.opts.logf("broker: open channel: %v", err)
		if err := c.sleep(ctx, backoff(attempt, c.opts.MaxBackoff)); err != nil {
			return nil, err
		}
	}
}

// Publish sends body persistent, with content type application/json, to
// the exchange under the routing key v03.<dirs of relPath>, and waits for
// the broker's confirm. A message the broker does not confirm (connection
// lost, negative confirm) is sent again on a fresh channel.
func (c *amqpConn) Publish(ctx context.Context, relPath string, body []byte) error {
	topic := v03.AMQPTopic(c.opts.TopicPrefix, relPath)
	msg := amqp.Publishing{ContentType: v03.ContentType, DeliveryMode: amqp.Persistent, Body: body}
	for attempt := 1; ; attempt++ {
		ch, err := c.publisher(ctx)
		if err != nil {
			return fmt.Errorf("publish %s: %w", relPath, err)
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, c.opts.Exchange, topic, false, false, msg)
		if err == nil {
			var ok bool
			ok, err = dc.WaitContext(ctx)
			if err != nil {
				return fmt.Errorf("publish %s: %w", relPath, err)
			}
			if ok {
				return nil
			}
			err = errors.New("not confirmed by the broker")
		}
		if ctx.Err() != nil {
			return fmt.Errorf("publish %s: %w", relPath, ctx.Err())
		}
		wait := backoff(attempt, c.opts.MaxBackoff)
		c.opts.logf("broker: publish %s: %v; sending again in %v", relPath, err, wait)
		if err := c.sleep(ctx, wait); err != nil {
			return fmt.Errorf("publish %s: %w", relPath, err)
		}
	}
}

// bindingKey turns a slash-separated subtopic pattern into an AMQP binding
// key below the prefix.
func (c *amqpConn) bindingKey(sub string) string {
	sub = strings.Trim(sub, "/")
	key := strings.ReplaceAll(sub, "/", ".")
	if c.opts.TopicPrefix == "" {
		return key
	}
	return c.opts.TopicPrefix + "." + key
}

// consume declares the queue as sr3 does (durable, not auto-deleted),
// binds it, and starts consuming with manual acknowledgements.
func (c *amqpConn) consume(ctx context.Context, retry bool) (<-chan amqp.Delivery, error) {
	c.mu.Lock()
	conn, err := c.connectLocked(ctx, retry)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	c.declareExchange(conn)
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	fail := func(what string, err error) (<-chan amqp.Delivery, error) {
		ch.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var args amqp.Table
	if c.opts.DeadLetterExchange != "" {
		args = amqp.Table{"x-dead-letter-exchange": c.opts.DeadLetterExchange}
	}
	if _, err := ch.QueueDeclare(c.opts.Queue, true, false, false, false, args); err != nil {
		return fail("declare queue "+c.opts.Queue, err)
	}
	for _, sub := range c.opts.Subtopics {
		key := c.bindingKey(sub)
		if err := ch.QueueBind(c.opts.Queue, key, c.opts.Exchange, false, nil); err != nil {
			return fail(fmt.Sprintf("bind %s to %s with %s", c.opts.Queue, c.opts.Exchange, key), err)
		}
	}
	if err := ch.Qos(c.opts.Prefetch, 0, false); err != nil {
		return fail("qos", err)
	}
	d, err := ch.ConsumeWithContext(ctx, c.opts.Queue, "", false, false, false, false, nil)
	if err != nil {
		return fail("consume "+c.opts.Queue, err)
	}
	return d, nil
}

// Subscribe consumes the queue; after a lost connection it reconnects,
// with backoff, and goes on. Messages delivered but not acknowledged
// before the loss are redelivered by the broker.
func (c *amqpConn) Subscribe(ctx context.Context) (<-chan *Delivery, error) {
	if c.opts.Queue == "" {
		return nil, fmt.Errorf("subscribe: no queue name: %w", ErrURL)
	}
	in, err := c.consume(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", c.name, err)
	}
	out := make(chan *Delivery)
	go func() {
		defer close(out)
		for attempt := 0; ; {
			for d := range in {
				attempt = 0
				d := d
				del := &Delivery{
					Topic:       d.RoutingKey,
					Body:        d.Body,
					ContentType: d.ContentType,
					Redelivered: d.Redelivered,
					ack:         func() error { return d.Ack(false) },
					reject:      func() error { return d.Reject(false) },
				}
				select {
				case out <- del:
				case <-ctx.Done():
					return
				case <-c.done:
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			attempt++
			c.opts.logf("broker: lost the subscription to %s; reconnecting", c.name)
			if err := c.sleep(ctx, backoff(attempt, c.opts.MaxBackoff)); err != nil {
				return
			}
			for {
				in, err = c.consume(ctx, true)
				if err == nil {
					break
				}
				if ctx.Err() != nil || errors.Is(err, ErrClosed) {
					return
				}
				attempt++
				c.opts.logf("broker: subscribe: %v", err)
				if err := c.sleep(ctx, backoff(attempt, c.opts.MaxBackoff)); err != nil {
					return
				}
			}
		}
	}()
	return out, nil
}

// Close closes the connection; a Subscribe channel closes too.
func (c *amqpConn) Close() error {
	c.closeOnce.Do(func() { close(c.done) })
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && !c.conn.IsClosed() {
		return c.conn.Close()
	}
	return nil
}
