package serve

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
)

// maxIdleHandles bounds the open files an export keeps between responses.
const maxIdleHandles = 256

// handlePool keeps files of an export open between responses, so that a
// request for a file served from disk costs one lseek instead of opening
// every folder of its path again through os.Root. The files of an export
// never change (mirror.json lists them and the folder is never written
// after activation), so an open handle stays valid until the export is
// dropped, when close releases them all.
//
// On Windows an open handle keeps a file from being deleted, and import
// prunes old exports; handles are not kept there.
type handlePool struct {
	mu     sync.Mutex
	idle   map[*fileEntry][]*os.File
	count  int
	closed bool
}

// get returns an idle handle of f positioned at its start, or nil.
func (p *handlePool) get(f *fileEntry) *os.File {
	p.mu.Lock()
	hs := p.idle[f]
	if len(hs) == 0 {
		p.mu.Unlock()
		return nil
	}
	fh := hs[len(hs)-1]
	p.idle[f] = hs[:len(hs)-1]
	p.count--
	p.mu.Unlock()
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		fh.Close()
		return nil
	}
	return fh
}

// put keeps fh for the next response for f, or closes it when the pool is
// full, closed, or handles are not kept on this system.
func (p *handlePool) put(f *fileEntry, fh *os.File) {
	if runtime.GOOS == "windows" {
		fh.Close()
		return
	}
	p.mu.Lock()
	if p.closed || p.count >= maxIdleHandles {
		p.mu.Unlock()
		fh.Close()
		return
	}
	if p.idle == nil {
		p.idle = map[*fileEntry][]*os.File{}
	}
	p.idle[f] = append(p.idle[f], fh)
	p.count++
	p.mu.Unlock()
}

// close closes every idle handle; later puts close theirs at once.
func (p *handlePool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, hs := range p.idle {
		for _, fh := range hs {
			fh.Close()
		}
	}
	p.idle = nil
	p.count = 0
}

// openServed returns a handle of f for a response: an idle one, or f opened
// through the export's root and checked to be a regular file of the size
// mirror.json lists. The caller hands it back with e.handles.put.
func (e *export) openServed(f *fileEntry) (*os.File, error) {
	if fh := e.handles.get(f); fh != nil {
		return fh, nil
	}
	fh, err := e.open(f)
	if err != nil {
		return nil, err
	}
	fi, err := fh.Stat()
	switch {
	case err != nil:
		fh.Close()
		return nil, err
	case !fi.Mode().IsRegular():
		fh.Close()
		return nil, fmt.Errorf("%s: %w", f.rel, errNotRegular)
	case fi.Size() != f.size:
		fh.Close()
		return nil, fmt.Errorf("%s is %d bytes, mirror.json lists %d: %w", f.rel, fi.Size(), f.size, errDigestMismatch)
	}
	return fh, nil
}
