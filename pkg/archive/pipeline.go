package archive

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"os"
	"sync"
)

// chunkSize is the size of the buffers in which a file entry's bytes pass
// from the goroutine that walks the archive to the workers.
const chunkSize = 128 << 10

// errWorkerFailed stops the walk when a worker has failed; the worker's
// own error is what the caller reports.
var errWorkerFailed = errors.New("archive: a worker failed")

// fileJob is one file entry on its way to a worker: its bytes arrive as
// first and then, for a file larger than one chunk, in order on rest, which
// the walking goroutine closes after the last chunk (or when it stops).
type fileJob struct {
	// index is the entry's position among the files sent, from 0.
	index int
	name  string
	size  int64
	first []byte
	rest  chan []byte
	// done, when set, is closed once a worker has finished the job.
	done chan struct{}
	// folder and file are Extract's: the folder the file is created in,
	// and the file while it is written.
	folder *folder
	file   *os.File
	// doc is Verify's: where a signed document's bytes are kept.
	doc *keptDoc
}

// jobHandler is what the workers do with each file besides hashing it.
type jobHandler interface {
	// open prepares job's destination and returns where its bytes go,
	// or nil when they are only hashed.
	open(job *fileJob) (io.Writer, error)
	// finish is called after every byte of job was hashed and written
	// without error, with the SHA-256 of its contents.
	finish(job *fileJob, sum [sha256.Size]byte) error
	// release is called last for every job sent, also after an error,
	// when the walk stopped before all its bytes arrived, or when the
	// job never reached a worker.
	release(job *fileJob)
}

// pipeline hands the bytes of file entries from the walking goroutine to
// a few workers, which hash them and pass them to a jobHandler. It holds at
// most maxChunks chunks: the walk waits for a free one, so the memory in
// flight is bounded, and decompression runs ahead of hashing and writing
// by at most that much.
//
// A worker error is kept, the lowest entry index first (the error a
// sequential pass would have met), and makes every later wait of the walk
// return errWorkerFailed. Every job sent is still worked to its end, so
// that the error of an earlier entry is not lost to one of a later entry.
type pipeline struct {
	handler jobHandler
	jobs    chan *fileJob
	free    chan []byte
	failed  chan struct{}
	wg      sync.WaitGroup

	mu        sync.Mutex
	allocated int
	maxChunks int
	err       error
	errIndex  int
	sent      int
}

// newPipeline starts workers goroutines that run handler.
func newPipeline(handler jobHandler, workers, maxChunks int) *pipeline {
	p := &pipeline{
		handler:   handler,
		jobs:      make(chan *fileJob, maxChunks),
		free:      make(chan []byte, maxChunks),
		failed:    make(chan struct{}),
		maxChunks: maxChunks,
	}
	for range workers {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

// wait stops the workers once every job sent is done and returns the
// first worker error.
func (p *pipeline) wait() error {
	close(p.jobs)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// chunk returns a free chunk buffer, allocating one while fewer than
// maxChunks exist, else waiting for a worker to give one back.
func (p *pipeline) chunk() ([]byte, error) {
	select {
	case b := <-p.free:
		return b, nil
	default:
	}
	p.mu.Lock()
	if p.allocated < p.maxChunks {
		p.allocated++
		p.mu.Unlock()
		return make([]byte, chunkSize), nil
	}
	p.mu.Unlock()
	select {
	case b := <-p.free:
		return b, nil
	case <-p.failed:
		return nil, errWorkerFailed
	}
}

// giveBack returns a chunk to the free list.
func (p *pipeline) giveBack(b []byte) {
	p.free <- b[:cap(b)]
}

// sendFile reads job.size bytes of one file entry from r and hands them to
// a worker as job. It returns the bytes read; fewer than job.size with a
// nil error means the entry ended early.
func (p *pipeline) sendFile(job *fileJob, r io.Reader) (int64, error) {
	job.index = p.sent
	p.sent++
	if job.size == 0 {
		return 0, p.dispatch(job)
	}
	buf, err := p.chunk()
	if err != nil {
		p.handler.release(job)
		return 0, err
	}
	n, err := io.ReadFull(r, buf[:min(job.size, chunkSize)])
	job.first = buf[:n]
	if err != nil || int64(n) == job.size {
		if derr := p.dispatch(job); derr != nil {
			return int64(n), derr
		}
		return int64(n), readEnd(err)
	}
	job.rest = make(chan []byte, p.maxChunks)
	defer close(job.rest)
	if err := p.dispatch(job); err != nil {
		return int64(n), err
	}
	return p.sendRest(job, r, int64(n))
}

// sendRest sends the chunks of a file after its first one.
func (p *pipeline) sendRest(job *fileJob, r io.Reader, n int64) (int64, error) {
	for n < job.size {
		buf, err := p.chunk()
		if err != nil {
			return n, err
		}
		k, err := io.ReadFull(r, buf[:min(job.size-n, chunkSize)])
		n += int64(k)
		if k > 0 {
			job.rest <- buf[:k]
		} else {
			p.giveBack(buf)
		}
		if err != nil {
			return n, readEnd(err)
		}
	}
	return n, nil
}

// readEnd turns the end of an entry's data into a nil error: the caller
// compares the bytes read with the entry's size.
func readEnd(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

// dispatch queues job for a worker. A job that cannot be queued any more
// is released here.
func (p *pipeline) dispatch(job *fileJob) error {
	select {
	case p.jobs <- job:
		return nil
	case <-p.failed:
		if job.first != nil {
			p.giveBack(job.first)
		}
		p.handler.release(job)
		return errWorkerFailed
	}
}

// await waits until a worker has finished job, which must have been sent
// with a done channel.
func (p *pipeline) await(job *fileJob) error {
	select {
	case <-job.done:
	case <-p.failed:
		return errWorkerFailed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return errWorkerFailed
	}
	return nil
}

// stopped returns errWorkerFailed once a worker has failed.
func (p *pipeline) stopped() error {
	select {
	case <-p.failed:
		return errWorkerFailed
	default:
		return nil
	}
}

// superseded reports whether a worker already failed on an entry before
// job, whose error then is the one reported: job is only drained.
func (p *pipeline) superseded(job *fileJob) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err != nil && p.errIndex < job.index
}

// fail records a worker error.
func (p *pipeline) fail(job *fileJob, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		close(p.failed)
	}
	if p.err == nil || job.index < p.errIndex {
		p.err, p.errIndex = err, job.index
	}
}

// work runs jobs until the job queue is closed.
func (p *pipeline) work() {
	defer p.wg.Done()
	h := sha256.New()
	for job := range p.jobs {
		p.run(job, h)
	}
}

// run hashes one job's bytes, passes them to the handler and gives the
// chunks back. Every chunk is taken from rest even after an error, so that
// the walk never waits on a worker that has stopped; an error is recorded
// at once, so that the walk stops soon.
func (p *pipeline) run(job *fileJob, h hash.Hash) {
	defer p.handler.release(job)
	if job.done != nil {
		defer close(job.done)
	}
	r := &jobRun{p: p, job: job, h: h, err: errWorkerFailed}
	h.Reset()
	if !p.superseded(job) {
		r.w, r.err = p.handler.open(job)
		r.failed()
	}
	if job.first != nil {
		r.consume(job.first)
	}
	if job.rest != nil {
		for b := range job.rest {
			r.consume(b)
		}
	}
	if r.err == nil && r.n == job.size {
		var sum [sha256.Size]byte
		h.Sum(sum[:0])
		r.err = p.handler.finish(job, sum)
		r.failed()
	}
}

// jobRun is a worker's pass over one job.
type jobRun struct {
	p   *pipeline
	job *fileJob
	h   hash.Hash
	w   io.Writer
	n   int64
	err error
}

// consume hashes and writes one chunk, or only gives it back after an
// error.
func (r *jobRun) consume(b []byte) {
	if r.err == nil {
		r.h.Write(b)
		r.n += int64(len(b))
		if r.w != nil {
			_, r.err = r.w.Write(b)
			r.failed()
		}
	}
	r.p.giveBack(b)
}

// failed records the run's error, if any, with the pipeline.
func (r *jobRun) failed() {
	if r.err != nil && r.err != errWorkerFailed {
		r.p.fail(r.job, r.err)
	}
}
