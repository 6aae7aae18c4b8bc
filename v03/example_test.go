package v03_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/zsyncpipe/zsyncpipe/v03"
)

func Example() {
	id, _ := v03.Sum(v03.SHA512, strings.NewReader("hello\n"))
	m := &v03.Message{
		PubTime:  time.Date(2026, 12, 1, 22, 24, 50, 454530001, time.UTC),
		BaseURL:  "https://example.com/data",
		RelPath:  "a/small.txt",
		Identity: &id,
		Size:     6,
		Content:  v03.NewContent([]byte("hello\n")),
	}
	body, _ := m.Encode()
	fmt.Println(v03.AMQPTopic(v03.TopicPrefix, m.RelPath))
	fmt.Println(v03.MQTTTopic(v03.Exchange, v03.TopicPrefix, m.RelPath))
	fmt.Println(string(body))

	got, err := v03.Decode(body)
	if err == nil {
		err = got.Validate(v03.Limits{})
	}
	fmt.Println(got.Identity.Method, err)
	// Output:
	// v03.a
	// xpublic/v03/a
	// {"pubTime": "20261201T222450.454530001", "baseUrl": "https://example.com/data", "relPath": "a/small.txt", "size": 6, "identity": {"method":"sha512","value":"58IrmUxZ2c8rSOVJseJGZmNgRZMNPafBrLKZ0cO3+TH5Sq5B7dosKyB6NuEPi8uNRSI+VIePWzFufOO2vAGWKQ=="}, "content": {"encoding":"utf-8","value":"hello\n"}}
	// sha512 <nil>
}
