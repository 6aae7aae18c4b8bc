//go:build ignore

package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/zsyncpipe/zsyncpipe"
)

func main() {
	f, _ := os.Create(os.Args[3])
	pprof.StartCPUProfile(f)
	defer pprof.StopCPUProfile()
	start := time.Now()
	var mu sync.Mutex
	last := ""
	sum, err := zsyncpipe.Mirror(context.Background(), zsyncpipe.MirrorOptions{URL: os.Args[1], Dir: os.Args[2], Delete: true,
		Progress: func(p zsyncpipe.MirrorProgress) {
			mu.Lock()
			defer mu.Unlock()
			if p.Phase != last {
				fmt.Printf("%6.2fs %s\n", time.Since(start).Seconds(), p.Phase)
				last = p.Phase
			}
		}})
	fmt.Printf("%6.2fs done %+v %v\n", time.Since(start).Seconds(), sum, err)
}
