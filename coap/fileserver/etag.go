package fileserver

import (
	"crypto/sha256"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// The ETag of a file version: the first 8 bytes of its content's SHA-256,
// computed once per version, however many requests and paths ask for it
// at the same time. A version is what versionOf says identifies it: the
// device, inode, size and modification time on Unix.

// versionKey identifies one version of a file's content.
type versionKey struct {
	name     string // where the platform has no inode numbers
	dev, ino uint64
	size     int64
	mtime    int64 // nanoseconds since the epoch
}

// hashJob is the hash of one version, computed by the first preparation
// that needs it while the others wait for done. etag and err are set
// before done is closed.
type hashJob struct {
	done   chan struct{}
	etag   [8]byte
	err    error
	size   int64
	start  time.Time
	hashed atomic.Int64 // bytes hashed so far
}

// maxVersions bounds the versions whose ETag the server remembers (about
// a hundred bytes each): beyond the open files, they spare a re-hash when
// a file comes back into the cache unchanged.
const maxVersions = 4096

// hashChunk is how much of a file is read per step of its hash.
const hashChunk = 64 << 10

// etagOf returns the ETag of version v of the open file f, hashing it
// unless another preparation is already doing so, in which case it waits
// for that one. p learns the job, to say how long it will take.
func (s *Server) etagOf(name string, v versionKey, f *os.File, size int64, p *prep) ([8]byte, error) {
	s.mu.Lock()
	j := s.versions[v]
	own := j == nil
	if own {
		j = &hashJob{done: make(chan struct{}), size: size, start: time.Now()}
		if len(s.versions) >= maxVersions {
			s.forgetVersionLocked()
		}
		s.versions[v] = j
	}
	s.mu.Unlock()
	p.job.Store(j)
	if !own {
		select {
		case <-j.done:
			return j.etag, j.err
		case <-s.done:
			return [8]byte{}, ErrServerClosed
		}
	}
	if s.hashHook != nil {
		s.hashHook(name)
	}
	j.etag, j.err = s.hash(f, j)
	if j.err != nil {
		s.mu.Lock()
		if s.versions[v] == j {
			delete(s.versions, v) // the next request tries again
		}
		s.mu.Unlock()
	}
	close(j.done)
	return j.etag, j.err
}

// forgetVersionLocked forgets the ETag of one version, a random one
// whose hash is finished.
func (s *Server) forgetVersionLocked() {
	for k, j := range s.versions {
		select {
		case <-j.done:
			delete(s.versions, k)
			return
		default:
		}
	}
}

// hash reads the first j.size bytes of f (fewer if it shrank: the next
// request sees the change) into SHA-256, and stops when the server closes.
func (s *Server) hash(f *os.File, j *hashJob) ([8]byte, error) {
	var etag [8]byte
	h := sha256.New()
	buf := make([]byte, hashChunk)
	for off := int64(0); off < j.size; {
		select {
		case <-s.done:
			return etag, ErrServerClosed
		default:
		}
		n, err := f.ReadAt(buf[:min(int64(len(buf)), j.size-off)], off)
		h.Write(buf[:n])
		off += int64(n)
		j.hashed.Store(off)
		if err == io.EOF {
			break
		}
		if err != nil {
			return etag, err
		}
	}
	copy(etag[:], h.Sum(nil))
	return etag, nil
}

// remaining estimates how long j still needs, from its progress so far;
// 0 when it cannot tell.
func (j *hashJob) remaining(now time.Time) time.Duration {
	done, elapsed := j.hashed.Load(), now.Sub(j.start)
	if done <= 0 || elapsed <= 0 {
		return 0
	}
	return time.Duration(float64(elapsed) * float64(j.size-done) / float64(done))
}
