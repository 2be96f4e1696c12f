package ledger

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ErrSpoolFull is returned (wrapped, with ErrUnavailable) when Redis fails
// and the spool already holds spool_max settlements.
var ErrSpoolFull = errors.New("settlement spool full")

const (
	spoolFile = "settlements.jsonl"
	spoolLock = "settlements.lock"
	// replayBatch is how many settlements one replay step takes.
	replayBatch = 64
	minBackoff  = 100 * time.Millisecond
	maxBackoff  = 5 * time.Second
)

// spool is the bounded FIFO of settlements Redis has not taken yet. With a
// directory, every entry is also appended to a file and fsync'd before
// push returns, and the file is read back at start; entries delivered are
// dropped from the file lazily (replays are idempotent, so a delivered
// entry replayed again after a crash changes nothing).
type spool struct {
	mu    sync.Mutex
	items []*Settlement
	max   int
	wake  chan struct{}

	dir   string
	file  *os.File
	lock  *os.File
	stale int // delivered entries still in the file
}

func openSpool(dir string, max int) (*spool, error) {
	s := &spool{max: max, wake: make(chan struct{}, 1), dir: dir}
	if dir == "" {
		return s, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create spool directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, spoolLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot open spool lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("spool directory %s is in use by another process: %w", dir, err)
	}
	s.lock = lock
	path := filepath.Join(dir, spoolFile)
	if err := s.load(path); err != nil {
		_ = lock.Close()
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("cannot open spool file: %w", err)
	}
	s.file = f
	return s, nil
}

// load reads the entries a previous run left. A torn last line (a crash
// in the middle of an append, before its fsync) is skipped.
func (s *spool) load(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read spool file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var st Settlement
		if json.Unmarshal(sc.Bytes(), &st) != nil || validateSettlement(&st) != nil {
			continue
		}
		if len(s.items) < s.max {
			s.items = append(s.items, &st)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("cannot read spool file: %w", err)
	}
	return nil
}

func (s *spool) depth() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// push queues st, on disk first when there is a file.
func (s *spool) push(st *Settlement) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.items) >= s.max {
		return fmt.Errorf("cannot keep settlement %s: %w: %w", st.ID, ErrSpoolFull, ErrUnavailable)
	}
	if s.file != nil {
		line, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("cannot encode settlement %s: %w", st.ID, err)
		}
		if _, err := s.file.Write(append(line, '\n')); err != nil {
			return fmt.Errorf("cannot spool settlement %s: %w", st.ID, err)
		}
		if err := s.file.Sync(); err != nil {
			return fmt.Errorf("cannot spool settlement %s: %w", st.ID, err)
		}
	}
	s.items = append(s.items, st)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// head returns up to n of the oldest entries.
func (s *spool) head(n int) []*Settlement {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Settlement(nil), s.items[:min(n, len(s.items))]...)
}

// drop removes the n oldest entries, delivered, and compacts the file once
// delivered entries outnumber the waiting ones (amortized O(1) per entry).
func (s *spool) drop(n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.items[:n])
	s.items = s.items[n:]
	if s.file == nil {
		return nil
	}
	s.stale += n
	if len(s.items) == 0 || s.stale > max(len(s.items), 1024) {
		return s.compact()
	}
	return nil
}

// compact rewrites the file with the waiting entries only.
func (s *spool) compact() error {
	path := filepath.Join(s.dir, spoolFile)
	if len(s.items) == 0 {
		if err := s.file.Truncate(0); err != nil {
			return fmt.Errorf("cannot truncate spool file: %w", err)
		}
		s.stale = 0
		return s.file.Sync()
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("cannot compact spool file: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, st := range s.items {
		line, err := json.Marshal(st)
		if err != nil {
			_ = f.Close()
			return fmt.Errorf("cannot encode settlement %s: %w", st.ID, err)
		}
		_, _ = w.Write(append(line, '\n'))
	}
	if err := errors.Join(w.Flush(), f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("cannot compact spool file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot compact spool file: %w", err)
	}
	nf, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("cannot reopen spool file: %w", err)
	}
	_ = s.file.Close()
	s.file = nf
	s.stale = 0
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// close compacts and closes the file. It returns how many entries were
// left and whether they are on disk.
func (s *spool) close() (left int, persisted bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	left = len(s.items)
	if s.file == nil {
		return left, false, nil
	}
	err = s.compact()
	err = errors.Join(err, s.file.Close(), s.lock.Close())
	s.file = nil
	return left, true, err
}

// replay delivers the spool in the background, backing off while Redis
// keeps failing, until Close.
func (l *Ledger) replay() {
	defer l.done.Done()
	backoff := minBackoff
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.spool.wake:
		case <-timer.C:
		}
		if l.drain(context.Background()) {
			backoff = minBackoff
			continue
		}
		timer.Reset(backoff)
		backoff = min(2*backoff, maxBackoff)
		// Stay asleep until the back-off ends, even when new entries wake
		// the loop: they wait behind the ones that just failed.
		select {
		case <-l.stop:
			return
		case <-timer.C:
			timer.Reset(0)
		}
	}
}

// drain delivers spooled settlements, oldest first, until the spool is
// empty (true) or Redis fails or ctx ends (false).
func (l *Ledger) drain(ctx context.Context) bool {
	for {
		batch := l.spool.head(replayBatch)
		if len(batch) == 0 {
			return true
		}
		delivered := 0
		for _, st := range batch {
			sctx, cancel := context.WithTimeout(ctx, l.timeout)
			err := l.redis.Settle(sctx, st)
			cancel()
			if err != nil && !errors.Is(err, ErrInvalid) {
				break
			}
			if err != nil {
				l.log.Error("ledger: dropping invalid spooled settlement", "id", st.ID, "error", err)
			}
			delivered++
		}
		if err := l.spool.drop(delivered); err != nil {
			l.log.Error("ledger: cannot update spool file", "error", err)
		}
		if delivered < len(batch) || ctx.Err() != nil {
			return false
		}
		l.downUntil.Store(0)
	}
}
