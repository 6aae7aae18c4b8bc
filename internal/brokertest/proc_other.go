//go:build !unix

package brokertest

import (
	"os"
	"syscall"
)

// ownGroup is nil here: process groups are a Unix notion, and the brokers
// the tests start run on Unix.
func ownGroup() *syscall.SysProcAttr { return nil }

// signalGroup kills p: other systems have no process groups to signal.
func signalGroup(p *os.Process, _ syscall.Signal) error { return p.Kill() }
