//go:build unix

package brokertest

import (
	"os"
	"syscall"
)

// ownGroup starts a broker in a process group of its own, so that
// signalGroup reaches the processes it forks too.
func ownGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// signalGroup sends sig to the process group of p.
func signalGroup(p *os.Process, sig syscall.Signal) error { return syscall.Kill(-p.Pid, sig) }
