//go:build unix

package sshtest

import "syscall"

// KillConnections kills the processes sshd forked for its connections (the
// listener stays), as a dropped connection would end them. It returns the
// number of processes killed.
func (s *Server) KillConnections() int { return s.signalConnections(syscall.SIGKILL) }

// StallConnections stops (SIGSTOP) the processes sshd forked for its
// connections: the connections stay open, and nothing is answered. New
// connections are served. It returns the number of processes stopped.
func (s *Server) StallConnections() int { return s.signalConnections(syscall.SIGSTOP) }

func (s *Server) signalConnections(sig syscall.Signal) int {
	n := 0
	for _, pid := range descendants(s.cmd.Process.Pid) {
		if syscall.Kill(pid, sig) == nil {
			n++
		}
	}
	return n
}
