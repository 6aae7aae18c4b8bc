package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Embedded is an MQTT v5 broker running in the process, listening on a TCP
// address, that accepts every client. It keeps sessions and QoS 1 messages
// in memory only.
type Embedded struct {
	server *mqtt.Server
	addr   string
}

// StartEmbedded starts an embedded broker on addr ("127.0.0.1:0" picks a
// free port).
func StartEmbedded(addr string) (*Embedded, error) {
	// Resolve a free port now so that URL is known before Serve.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	addr = ln.Addr().String()
	ln.Close()
	s := mqtt.New(&mqtt.Options{
		InlineClient: false,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if err := s.Serve(); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return &Embedded{server: s, addr: addr}, nil
}

// URL is the broker's address as an mqtt:// URL.
func (e *Embedded) URL() string { return "mqtt://" + e.addr }

// Close stops the broker.
//
// It disconnects the clients of the broker's listener itself before
// mochi-mqtt's Server.Close, which would otherwise do it through
// Clients.GetByListener: in v2.7.9 that read-locks the client list twice
// over (it calls Clients.Len under its own read lock), and a client that
// disconnects in between, waiting for the write lock to leave the list,
// deadlocks both (https://github.com/mochi-mqtt/server/issues/488; it hung
// "serve --announce embedded://" at its end once in a test run). Clients.GetAll
// reads the list under one lock. Server.Close then finds the listener
// closed and does not go through the clients again.
func (e *Embedded) Close() error {
	e.server.Listeners.CloseAll(func(listener string) {
		for _, cl := range e.server.Clients.GetAll() {
			if cl.Net.Listener == listener && !cl.Closed() {
				_ = e.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
	return e.server.Close()
}

// embeddedConn is a Conn to an Embedded broker it started and stops.
type embeddedConn struct {
	*mqttConn
	broker *Embedded
}

func dialEmbedded(ctx context.Context, u *url.URL, opts Options) (Conn, error) {
	addr := u.Host
	if addr == "" {
		addr = DefaultEmbeddedAddr
	}
	e, err := StartEmbedded(addr)
	if err != nil {
		return nil, err
	}
	mu, _ := url.Parse(e.URL())
	c, err := dialMQTT(ctx, mu, opts)
	if err != nil {
		e.Close()
		return nil, err
	}
	return &embeddedConn{mqttConn: c, broker: e}, nil
}

// Close disconnects and stops the broker.
func (c *embeddedConn) Close() error {
	return errors.Join(c.mqttConn.Close(), c.broker.Close())
}
