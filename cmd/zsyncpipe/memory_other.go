//go:build !unix

package main

// peakRSS returns 0: the system gives no peak resident set here.
func peakRSS() int64 { return 0 }
