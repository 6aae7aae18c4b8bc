package announce_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/zsyncpipe/zsyncpipe/announce"
	"github.com/zsyncpipe/zsyncpipe/broker"
)

// A publisher announces a file of its tree; a subscriber applies the
// message to its own directory. Here the message goes straight from one to
// the other: with a broker, Publisher.Announce posts it and Subscriber.Run
// receives it.
func Example() {
	ctx := context.Background()
	tree, _ := os.MkdirTemp("", "tree")
	mirror, _ := os.MkdirTemp("", "mirror")
	defer os.RemoveAll(tree)
	defer os.RemoveAll(mirror)
	os.WriteFile(filepath.Join(tree, "hello.txt"), []byte("hello\n"), 0o644)

	pub, _ := announce.NewPublisher(announce.PublisherOptions{Dir: tree, BaseURL: "https://example.com/tree/"})
	c, _ := pub.Prepare(ctx, "hello.txt") // small: travels inline, no control file
	m, _ := pub.Message(c)
	body, _ := m.Encode()

	sub, _ := announce.NewSubscriber(announce.SubscriberOptions{Dir: mirror})
	fmt.Println(sub.Handle(ctx, body).Action) // written from the message
	fmt.Println(sub.Handle(ctx, body).Action) // a duplicate
	data, _ := os.ReadFile(filepath.Join(mirror, "hello.txt"))
	fmt.Printf("%q\n", data)
	// Output:
	// inline
	// unchanged
	// "hello\n"
}

// Subscribing with sr3's defaults: exchange xpublic, topic v03.#, a durable
// queue named as sr3 names them.
func ExampleSubscriber_Run() {
	ctx := context.Background()
	url := "amqp://user:password@broker.example.com/"
	conn, err := broker.Dial(ctx, url, broker.Options{
		Queue: broker.QueueName(broker.User(url), "subscribe", "zsyncpipe", broker.DefaultShare("/srv/mirror")),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	sub, _ := announce.NewSubscriber(announce.SubscriberOptions{Dir: "/srv/mirror"})
	_ = sub.Run(ctx, conn) // until ctx ends
}
