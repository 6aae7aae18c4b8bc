// Package httpsource reads byte ranges of a remote file over HTTP(S) for the
// fetch stage of a zsync client, and downloads whole small files (the
// .zsync control file).
//
// # Request strategy
//
// A Source serves one URL and implements [source.RangeSource]. The fetch
// stage runs several ReadRanges calls at once, which gives parallel
// requests (over HTTP/2 they share one connection). Each call sends one or
// more GET requests with "Range: bytes=a-b,c-d,…" carrying at most
// MaxRanges ranges (64 at first; zsync asks for 20), and delivers each
// requested range to the callback in order, as it streams in: nothing is
// buffered beyond what net/http reads ahead and the part headers. Requests
// carry "Accept-Encoding: identity" so that byte offsets are the file's.
//
// Three answers are understood:
//
//   - 206 with one Content-Range: a single part, which may cover several
//     requested ranges when the server coalesced them;
//   - 206 multipart/byteranges: one part per range (or per coalesced
//     group), each with its own Content-Range;
//   - 200 with the whole file: the body is streamed and the requested
//     ranges are picked out of it; reading stops after the last one.
//
// Every part must begin at or before the next undelivered range and hold it
// whole, parts must come in file order, and a 206 part must hold exactly the
// bytes its Content-Range states; anything else (and a body cut short) is a
// transient failure. The parts of a multipart body are framed by their
// Content-Range (the delimiter must follow each part's last byte), not
// found by scanning their bytes for the boundary as mime/multipart does:
// a part's bytes are read from the connection straight into the
// callback's buffer, in reads as large as it asks for. Fetching 15,000
// ranges of 8 KiB from nginx (122 MB, 20 per request) took 0.25-0.29
// CPU-s instead of 0.32-0.34 with mime/multipart.
//
// # Merge rule
//
// Two requested ranges are asked for as one range, and the gap bytes read
// and thrown away, when the gap costs no more than the second range would
// as a part of its own (PartOverhead: ≈ 120 bytes of multipart part
// headers and ≈ 20 bytes of Range header for a file of some hundred MB),
// or when it is at most MergeGap bytes if that is set.
//
// # Adaptive rules
//
// Some servers refuse many ranges. When a request for n > 1 ranges is
// answered with 416, 400, 413, 414, 431 or 501, the Source halves its
// ranges per request (to n/2, at least 1) for the rest of its life and
// carries on. A 200 (the whole file) to n > 1 ranges steps down to one
// range per request at once, as nginx with max_ranges 1 answers single
// ranges; that body is dropped unread.
//
// When even a single range is answered with 200 the server ignores ranges
// (python's http.server): that body becomes a stream shared by every
// ReadRanges call of the Source. The calls register the ranges they wait
// for; the stream reads the body front to back and hands each range to its
// call as it passes it, then stops reading when no call waits for anything
// further (after a pause of up to 2 s for the next call). Range requests still
// in flight when the stream starts are waited for (up to 2 s), so that
// their calls join before the stream passes their ranges. The calls of the
// fetch stage start in file order but may reach the Source in any order:
// the fetch stage announces their ranges with Expect, and the stream does
// not pass an announced range until its call has joined (waiting up to
// 2 s for it). The file is thus read once; only a range asked for after
// the stream went past it makes the stream start again from the beginning. A failure of the stream is a
// transient failure of every call waiting on it.
//
// # Consistency
//
// The validators of the first response (ETag, else Last-Modified) and the
// file size are remembered. Later requests carry If-Range with the strong
// ETag, or with Last-Modified when there is none. A response with a
// different ETag, Last-Modified or size — a 200 to an If-Range request when
// the file changed, or a 206 from a server that ignores If-Range — fails
// with an error wrapping ErrChanged before any of its bytes is delivered,
// so two versions are never mixed.
// The first request of a Source goes alone, and calls started beside it
// wait for its response headers, so that every later request carries
// If-Range.
//
// # Retry policy
//
// Connection failures, bodies cut short, stalls (no byte for IdleTimeout,
// default 30 s, headers included), 408, 429 and 5xx answers and malformed
// responses are transient: the request is sent again for the ranges not
// yet delivered, after a backoff that starts at Backoff (200 ms), doubles
// per retry up to 10 s, with jitter between half and all of it; a
// Retry-After header (seconds or HTTP date, capped at 60 s) replaces the
// backoff. Up to Retries (5) retries follow a failure; the count starts
// again whenever an attempt delivered a range, so a long transfer over a
// flaky link still ends. The waits without progress are bounded in total
// by MaxWait (60 s): stalled requests, backoff and Retry-After pauses
// together, so a server that always stalls costs a minute, not Retries
// times IdleTimeout. Download follows the same policy. Then ReadRanges returns the last error, which names
// the URL and status, with the number of attempts and the time waited. Other 4xx
// answers, certificate errors and redirect loops fail at once. A network
// error while the callback reads is told apart from the callback's own
// error: the reader given to the callback remembers it.
//
// # TLS
//
// Certificates are always verified; there is no option to turn that off.
// The built client trusts the system's roots — Go reads them from the
// files named by SSL_CERT_FILE and SSL_CERT_DIR when those are set — and
// the certificates of Options.CAFile, for private servers. Certificate
// errors are not retried.
//
// # Credentials and redirects
//
// Basic credentials from Options.Credentials (or the URL) are sent only to
// the host, or host:port, they were given for, on every redirect hop.
// Redirects are followed; Download reports the final URL, against which
// relative URLs in a control file resolve.
//
// # Mirrors
//
// Mirrors spreads ReadRanges calls over several sources and drops a source
// that fails or delivers data the callback rejects with [source.ErrCorrupt];
// the rest of the call is read from another source.
package httpsource
