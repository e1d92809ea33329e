package sign

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/stellaops/stellaops-cli/pkg/trust"
)

// ErrEnvelopeChanged reports an envelope whose bytes changed between the
// readings of VerifyDSSEStream.
var ErrEnvelopeChanged = errors.New("changed while it was being verified")

// VerifyDSSEStream is VerifyDSSEDigest for an envelope read through open,
// without holding it whole: a 66,000-file mirror.json makes a 16 MiB
// envelope, the largest single thing a verify would otherwise hold. open
// is called twice: the first reading keeps the envelope's fields but the
// payload (the signatures, a few hundred bytes) and hashes and measures
// the payload; the second hashes the payload's pre-authentication
// encoding, whose header gives the payload's length. Both readings must
// have the SHA-256 want, which the caller took of the bytes it checks the
// rest of the bundle against.
//
// The result and the error are those VerifyDSSEDigest gives for the same
// bytes. An envelope not in the plain form (a payload string of base64
// characters without escapes, written once, under the key "payload"), an
// envelope that is not valid, or roots holding an Ed25519 key (which signs
// the message itself, not a hash of it) are read whole once and passed to
// VerifyDSSEDigest.
func VerifyDSSEStream(open func() (io.ReadCloser, error), want [32]byte, payloadType string, roots *trust.Roots, now time.Time, threshold int) (DSSEResult, error) {
	hashes, ok := rootHashes(roots)
	if !ok {
		return verifyWhole(open, want, payloadType, roots, now, threshold)
	}
	// First reading: the envelope without its payload, and the payload's
	// digest and length.
	payloadHash := sha256.New()
	dec := newBase64Stream(func(b []byte) { payloadHash.Write(b) })
	skel, raw, ok, err := scanEnvelope(open, dec.write)
	if err != nil {
		return DSSEResult{}, err
	}
	if !ok || raw != want || dec.close() != nil {
		return verifyWhole(open, want, payloadType, roots, now, threshold)
	}
	env, err := parseEnvelopeView(skel)
	if err != nil || string(env.Payload) != `""` || env.PayloadType != payloadType || dec.total != dec.expected() {
		return verifyWhole(open, want, payloadType, roots, now, threshold)
	}
	pae := &paeSource{header: paeHeader(env.PayloadType, dec.total), n: dec.total, digests: map[crypto.Hash][]byte{}, streamed: true}
	payloadHash.Sum(pae.sum[:0])

	// Second reading: the encoding's hashes, for the algorithms of roots.
	ws := make([]hash.Hash, len(hashes))
	for i, h := range hashes {
		ws[i] = h.New()
		io.WriteString(ws[i], pae.header)
	}
	dec = newBase64Stream(func(b []byte) {
		for _, w := range ws {
			w.Write(b)
		}
	})
	_, raw, ok, err = scanEnvelope(open, dec.write)
	if err != nil {
		return DSSEResult{}, err
	}
	if !ok || raw != want || dec.close() != nil || dec.total != pae.n {
		return DSSEResult{}, fmt.Errorf("%w: %w", ErrDSSEMalformed, ErrEnvelopeChanged)
	}
	for i, h := range hashes {
		pae.digests[h] = ws[i].Sum(nil)
	}
	return checkSignatures(env, pae, roots, now, threshold, false)
}

// rootHashes lists the hashes the signatures of roots' keys are over, or
// reports false when a key signs the message itself (Ed25519) or is of a
// type verifyPAE does not know.
func rootHashes(roots *trust.Roots) ([]crypto.Hash, bool) {
	seen := map[crypto.Hash]bool{crypto.SHA256: true}
	out := []crypto.Hash{crypto.SHA256}
	add := func(h crypto.Hash) {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	if roots == nil {
		return out, true
	}
	for _, k := range roots.Keys {
		switch pub := k.Public.(type) {
		case *ecdsa.PublicKey:
			alg, err := DefaultAlg(pub)
			if err != nil {
				return nil, false
			}
			add(hashFor(alg))
		case *rsa.PublicKey:
			add(crypto.SHA384)
		default:
			return nil, false
		}
	}
	return out, true
}

// verifyWhole reads the envelope whole and verifies it with
// VerifyDSSEDigest.
func verifyWhole(open func() (io.ReadCloser, error), want [32]byte, payloadType string, roots *trust.Roots, now time.Time, threshold int) (DSSEResult, error) {
	f, err := open()
	if err != nil {
		return DSSEResult{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxEnvelopeSize+1))
	if err != nil {
		return DSSEResult{}, err
	}
	if sha256.Sum256(data) != want {
		return DSSEResult{}, fmt.Errorf("%w: %w", ErrDSSEMalformed, ErrEnvelopeChanged)
	}
	return VerifyDSSEDigest(data, payloadType, roots, now, threshold)
}

// base64Chars marks the bytes of standard base64, padding included.
var base64Chars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") {
		t[c] = true
	}
	return t
}()

// scanEnvelope reads an envelope from open and returns it with the
// contents of its payload string removed (skel), passing them to payload
// as they go by, and the SHA-256 of all the bytes read. ok is false when
// the envelope is not in the plain form VerifyDSSEStream streams: the
// payload string holds anything but base64 characters, "payload" is a key
// twice, or the envelope is larger than MaxEnvelopeSize. Only read errors
// are returned as errors.
//
// The scan tracks strings (with their escapes) and nesting, which is
// enough to find the top-level key "payload": whether the rest is valid
// JSON is for the strict parse of skel to say. Removing base64 characters
// from inside a string changes neither the validity of the document nor
// anything but that string's value.
func scanEnvelope(open func() (io.ReadCloser, error), payload func([]byte)) (skel []byte, raw [32]byte, ok bool, err error) {
	f, err := open()
	if err != nil {
		return nil, raw, false, err
	}
	defer f.Close()
	h := sha256.New()
	lr := &io.LimitedReader{R: f, N: MaxEnvelopeSize + 1}
	br := bufio.NewReaderSize(io.TeeReader(lr, h), 64<<10)
	var (
		depth    int
		inString bool
		escaped  bool
		keyStart = -1 // where a top-level string in key position starts in skel
		last     byte // the last byte outside strings that is not white space
		isKey    bool // the string being read is a top-level key
		wantVal  bool // the last top-level key was "payload", and ':' followed it
		sawKey   bool // the last top-level key was "payload"
		payloads int
	)
	for {
		c, rerr := br.ReadByte()
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, raw, false, rerr
		}
		if inString {
			skel = append(skel, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
				if isKey {
					sawKey = bytes.Equal(skel[keyStart:], []byte(`"payload"`))
				}
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			skel = append(skel, c)
			continue
		case '"':
			isKey = depth == 1 && (last == '{' || last == ',')
			if depth == 1 && last == ':' && wantVal {
				// The payload string: streamed, not kept.
				if payloads++; payloads > 1 {
					return nil, raw, false, nil
				}
				skel = append(skel, '"', '"')
				if !streamBase64(br, payload) {
					return nil, raw, false, nil
				}
				last, wantVal, sawKey = '"', false, false
				continue
			}
			inString, keyStart = true, len(skel)
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case ':':
			wantVal = depth == 1 && sawKey
		}
		if c != ':' {
			wantVal = false
		}
		if c != '"' {
			sawKey = sawKey && c == ':'
		}
		skel = append(skel, c)
		last = c
	}
	if lr.N == 0 {
		return nil, raw, false, nil // larger than MaxEnvelopeSize
	}
	h.Sum(raw[:0])
	return skel, raw, true, nil
}

// streamBase64 passes the characters of a string up to its closing quote
// (consumed) to fn, a buffer at a time, and reports false if one is not a
// base64 character or the string does not end.
func streamBase64(br *bufio.Reader, fn func([]byte)) bool {
	for {
		chunk, err := br.ReadSlice('"')
		end := err == nil
		if end {
			chunk = chunk[:len(chunk)-1]
		}
		for _, c := range chunk {
			if !base64Chars[c] {
				return false
			}
		}
		if len(chunk) > 0 {
			fn(chunk)
		}
		if end {
			return true
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return false
		}
	}
}

// base64Stream decodes base64 written to it in pieces of any length as
// base64.StdEncoding.Strict().Decode decodes it whole, in chunks of
// decodeChunkChars characters counted from the start. The text holds no
// line breaks (it comes from a JSON string without escapes), so every chunk
// but the last is a whole number of quanta without padding.
type base64Stream struct {
	buf   [decodeChunkChars]byte
	dec   [decodeChunkChars / 4 * 3]byte
	n     int
	chars int
	tail  [2]byte // the last two characters written
	out   func([]byte)
	total int
	err   error
}

func newBase64Stream(out func([]byte)) *base64Stream { return &base64Stream{out: out} }

// write adds characters.
func (s *base64Stream) write(p []byte) {
	for len(p) > 0 && s.err == nil {
		k := copy(s.buf[s.n:], p)
		s.n += k
		p = p[k:]
		if s.n == len(s.buf) && len(p) > 0 {
			s.flush(false)
		}
	}
}

// flush decodes the buffered characters.
func (s *base64Stream) flush(final bool) {
	part := s.buf[:s.n]
	if !final {
		if i := bytes.IndexByte(part, '='); i >= 0 {
			s.err = base64.CorruptInputError(s.chars + i)
			return
		}
	}
	switch {
	case s.n >= 2:
		s.tail = [2]byte{part[s.n-2], part[s.n-1]}
	case s.n == 1:
		s.tail = [2]byte{s.tail[1], part[0]}
	}
	m, err := base64.StdEncoding.Strict().Decode(s.dec[:], part)
	if err != nil {
		var bad base64.CorruptInputError
		if errors.As(err, &bad) {
			err = base64.CorruptInputError(int64(bad) + int64(s.chars))
		}
		s.err = err
		return
	}
	s.out(s.dec[:m])
	s.total += m
	s.chars += s.n
	s.n = 0
}

// close decodes what is left and returns the first error.
func (s *base64Stream) close() error {
	if s.err == nil && s.n > 0 {
		s.flush(true)
	}
	return s.err
}

// expected is the length the characters written decode to, if they are
// well formed (decodedLen).
func (s *base64Stream) expected() int {
	n := base64.StdEncoding.DecodedLen(s.chars)
	for i := 1; i >= 0 && i >= 2-s.chars && s.tail[i] == '='; i-- {
		n--
	}
	return max(n, 0)
}
