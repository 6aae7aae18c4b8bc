package httpsource

import "github.com/zsyncpipe/zsyncpipe/source"

// TransferStats implements source.StatsReporter: requests, ranges, and the
// protocol bytes beyond the payload (headers, multipart framing, bytes of a
// reply that were not asked for).
func (s *Source) TransferStats() source.Stats {
	st := s.Stats()
	return source.Stats{Requests: st.Requests, Ranges: st.Ranges, Overhead: st.BodyBytes - st.PayloadBytes + st.HeaderBytes,
		Downloaded: st.BodyBytes + st.HeaderBytes}
}

// TransferStats implements source.StatsReporter: the sum over the sources
// that report theirs.
func (m *Mirrors) TransferStats() source.Stats {
	var sum source.Stats
	for _, s := range m.srcs {
		if r, ok := s.(source.StatsReporter); ok {
			sum = sum.Add(r.TransferStats())
		}
	}
	return sum
}
