package broker_test

import (
	"context"
	"fmt"

	"github.com/zsyncpipe/zsyncpipe/broker"
)

// An embedded broker, a subscriber and a publisher in one process.
func Example() {
	ctx := context.Background()
	b, err := broker.StartEmbedded("127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	sub, _ := broker.Dial(ctx, b.URL(), broker.Options{Queue: broker.QueueName("", "subscribe", "example", "1")})
	defer sub.Close()
	in, _ := sub.Subscribe(ctx)

	pub, _ := broker.Dial(ctx, b.URL(), broker.Options{})
	defer pub.Close()
	pub.Publish(ctx, "a/b/file.txt", []byte(`{"relPath": "a/b/file.txt"}`))

	d := <-in
	fmt.Println(d.Topic, string(d.Body))
	d.Ack()
	// Output:
	// xpublic/v03/a/b {"relPath": "a/b/file.txt"}
}
