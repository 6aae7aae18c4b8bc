package broker

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Embedded.Close disconnects the clients itself (mochi-mqtt's own way can
// deadlock with a client leaving at the same time: see Close), and must
// still disconnect every one: a client connected when the broker closes
// sees its connection end, and Close returns.
func TestEmbeddedCloseDisconnectsClients(t *testing.T) {
	e, err := StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 3 {
		c := connectMQTT5(t, e.addr)
		defer c.Close()
		conns = append(conns, c)
	}
	closed := make(chan error, 1)
	go func() { closed <- e.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		// Whatever the broker sends on the way out (a DISCONNECT), then
		// the end of the connection; a deadline instead means the client
		// was left connected.
		if _, err := io.Copy(io.Discard, c); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("client %d still connected after Close", i)
			}
		}
	}
}

// connectMQTT5 connects to the broker at addr as a new MQTT v5 client and
// returns the connection once the broker has accepted it (its CONNACK).
func connectMQTT5(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 5,
		Connect:         packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 2) // CONNACK: type byte, remaining length
	if _, err := io.ReadFull(c, head); err != nil || head[0]>>4 != packets.Connack {
		t.Fatalf("no CONNACK: % x, %v", head, err)
	}
	rest := make([]byte, head[1])
	if _, err := io.ReadFull(c, rest); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Time{})
	return c
}
