//go:build !unix

package sshtest

// KillConnections does nothing here: the tests that run sshd run on Unix.
func (s *Server) KillConnections() int { return 0 }

// StallConnections does nothing here: the tests that run sshd run on Unix.
func (s *Server) StallConnections() int { return 0 }
