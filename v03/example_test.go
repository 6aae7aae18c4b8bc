package v03_test

import (
	"bytes"
	"errors"
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

// A file of 5000 bytes announced in partitions of 2048 bytes, as sr3_post
// with "blockSize 2048" does: one message per partition, each with the
// manifest of all three, its size and identity those of its partition.
func ExampleBlocks() {
	data := bytes.Repeat([]byte("zsyncpipe "), 500)
	const size = 2048
	var manifest []v03.Partition
	for off := 0; off < len(data); off += size {
		id, _ := v03.Sum(v03.MD5, bytes.NewReader(data[off:min(off+size, len(data))]))
		manifest = append(manifest, v03.Partition{Size: int64(min(size, len(data)-off)), Identity: id.Value})
	}
	m := &v03.Message{
		PubTime:  time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC),
		BaseURL:  "https://example.com/data",
		RelPath:  "a/big.bin",
		Size:     manifest[2].Size,
		Identity: &v03.Identity{Method: v03.MD5, Value: manifest[2].Identity},
		Blocks:   &v03.Blocks{Method: v03.Inplace, Size: size, Number: 2, Manifest: manifest},
	}
	body, _ := m.Encode()
	fmt.Println(string(body))

	got, _ := v03.Decode(body)
	if err := got.Validate(v03.Limits{}); err != nil {
		fmt.Println(err)
		return
	}
	off, n := got.Blocks.Range()
	fmt.Println("partition", got.Blocks.Number, "of", len(got.Blocks.Manifest), "bytes", off, "to", off+n, "of", got.Blocks.FileSize())

	got.Blocks.Number = 3
	fmt.Println(errors.Is(got.Validate(v03.Limits{}), v03.ErrBlocksNumber))
	// Output:
	// {"pubTime": "20261202T010000", "baseUrl": "https://example.com/data", "relPath": "a/big.bin", "size": 904, "identity": {"method":"md5","value":"5EtptX32oevA5kVNtImbdQ=="}, "blocks": {"method":"inplace","size":2048,"number":2,"manifest":{"0":{"size":2048,"identity":"ATobbeCpKMbUFYzqXV4NTw=="},"1":{"size":2048,"identity":"qKHABVx/AP1X24cN8G3QTQ=="},"2":{"size":904,"identity":"5EtptX32oevA5kVNtImbdQ=="}}}}
	// partition 2 of 3 bytes 4096 to 5000 of 5000
	// true
}
