package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/quirelog/quire/chaos"
	"github.com/quirelog/quire/partition"
)

// LosePower implements chaos.Disks. Brokers of a chaos cluster run with
// --power-loss-journal, which records after every fsync how large each
// segment and index file was. Every byte beyond that was only in the page
// cache, which a power cut loses: each file is cut back to its durable
// size plus, sometimes, a torn part of the unsynced tail, and files
// created since the last directory sync disappear.
func (t *processTarget) LosePower(id int32, rng chaos.Rand) (string, error) {
	if _, err := t.broker(id); err == nil {
		return "", fmt.Errorf("node %d is running; power loss applies to a killed node", id)
	}
	logDirs, err := filepath.Glob(filepath.Join(t.lc.specs[id-1].DataDir, "partitions", "*", "log"))
	if err != nil {
		return "", err
	}
	var cut, removed int
	var dropped int64
	for _, dir := range logDirs {
		c, r, d, err := losePowerIn(dir, filepath.Join(dir, partition.PowerLossJournalFile), rng)
		if err != nil {
			return "", err
		}
		cut, removed, dropped = cut+c, removed+r, dropped+d
	}
	return fmt.Sprintf("%d logs: %d files cut back, %d removed, %d unsynced bytes dropped", len(logDirs), cut, removed, dropped), nil
}

func losePowerIn(dir, journal string, rng chaos.Rand) (cut, removed int, dropped int64, err error) {
	// No journal means the log was never synced: none of it is durable.
	durable := map[string]int64{}
	raw, err := os.ReadFile(journal)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, 0, 0, err
	}
	if err == nil {
		if err := json.Unmarshal(raw, &durable); err != nil {
			return 0, 0, 0, fmt.Errorf("%s: %w", journal, err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, 0, err
	}
	for _, e := range ents {
		name := e.Name()
		if !isSegmentFile(name) {
			continue
		}
		path := filepath.Join(dir, name)
		info, err := e.Info()
		if err != nil {
			return 0, 0, 0, err
		}
		size, ok := durable[name]
		if !ok {
			dropped += info.Size()
			removed++
			if err := os.Remove(path); err != nil {
				return 0, 0, 0, err
			}
			continue
		}
		if info.Size() <= size {
			continue
		}
		keep := size
		if rng.IntN(2) == 0 { // a torn write: part of the tail made it
			keep += rng.Int64N(info.Size() - size)
		}
		dropped += info.Size() - keep
		cut++
		if err := os.Truncate(path, keep); err != nil {
			return 0, 0, 0, err
		}
	}
	return cut, removed, dropped, nil
}

func isSegmentFile(name string) bool {
	for _, suf := range []string{".log", ".index", ".timeindex"} {
		if strings.HasSuffix(name, suf) {
			return true
		}
	}
	return false
}

// Corrupt implements chaos.Disks: one segment file or Raft store of a
// killed node gets a flipped bit, a zeroed 4 KiB page or a truncation, at
// a random place. The node must notice when it restarts and rebuild that
// replica from its peers, never serve or vote with the damaged data.
func (t *processTarget) Corrupt(id int32, rng chaos.Rand) (string, error) {
	if _, err := t.broker(id); err == nil {
		return "", fmt.Errorf("node %d is running; corrupt a stopped node", id)
	}
	dataDir := t.lc.specs[id-1].DataDir
	logs, err := findSuffix(filepath.Join(dataDir, "partitions"), ".log")
	if err != nil {
		return "", err
	}
	stores, err := findSuffix(dataDir, "raft.db")
	if err != nil {
		return "", err
	}
	wal, err := findSuffix(filepath.Join(dataDir, "raftlog"), ".wal")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	files := append(append(logs, stores...), wal...)
	if len(files) == 0 {
		return "", fmt.Errorf("node %d has no segment or Raft store", id)
	}
	path := files[rng.IntN(len(files))]
	rel, _ := filepath.Rel(dataDir, path)
	if strings.HasSuffix(path, ".wal") {
		// The shared Raft log gets bit rot only: it reads a frame cut
		// short at its end as a write a crash interrupted, which is what
		// truncation and zeroed pages there look like.
		info, err := os.Stat(path)
		if err != nil || info.Size() == 0 {
			return "", fmt.Errorf("node %d: empty shared log segment %s", id, rel)
		}
		at := rng.Int64N(info.Size())
		return fmt.Sprintf("flipped a bit at byte %d of %s", at, rel), flipBit(path, at, byte(1)<<rng.IntN(8))
	}
	if strings.HasSuffix(path, "raft.db") && rng.IntN(2) == 0 {
		// Most of a bbolt file is free pages; damage a stored value so
		// the run tests detection, not luck.
		what, err := flipStoredValue(path, rng)
		return what + " of " + rel, err
	}
	info, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	at := rng.Int64N(info.Size())
	switch rng.IntN(3) {
	case 0:
		return fmt.Sprintf("flipped a bit at byte %d of %s", at, rel), flipBit(path, at, byte(1)<<rng.IntN(8))
	case 1:
		at &^= 4095
		n := min(4096, info.Size()-at)
		return fmt.Sprintf("zeroed %d bytes at %d of %s", n, at, rel), zeroRange(path, at, n)
	default:
		return fmt.Sprintf("truncated %s from %d to %d bytes", rel, info.Size(), at), os.Truncate(path, at)
	}
}

// flipStoredValue flips one bit of a Raft entry or of the term and vote in
// a stopped node's Raft store, as bit rot under bbolt would.
func flipStoredValue(path string, rng chaos.Rand) (string, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return "", err
	}
	defer db.Close()
	var what string
	err = db.Update(func(tx *bbolt.Tx) error {
		var keys [][]byte
		var bucket *bbolt.Bucket
		for _, name := range []string{"logs", "conf"} {
			if bucket = tx.Bucket([]byte(name)); bucket == nil {
				continue
			}
			bucket.ForEach(func(k, _ []byte) error {
				keys = append(keys, append([]byte(name+"/"), k...))
				return nil
			})
		}
		if len(keys) == 0 {
			return errors.New("empty Raft store")
		}
		pick := keys[rng.IntN(len(keys))]
		name, key, _ := bytes.Cut(pick, []byte("/"))
		b := tx.Bucket(name)
		v := append([]byte(nil), b.Get(key)...)
		at := rng.IntN(len(v))
		v[at] ^= byte(1) << rng.IntN(8)
		what = fmt.Sprintf("flipped a bit at byte %d of the %s value %x", at, name, key)
		return b.Put(key, v)
	})
	return what, err
}

func flipBit(path string, at int64, mask byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		return err
	}
	b[0] ^= mask
	_, err = f.WriteAt(b, at)
	return err
}

func zeroRange(path string, at, n int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteAt(make([]byte, n), at)
	return err
}

// findSuffix lists every non-empty file under root whose name ends in
// suffix, sorted so a seed picks the same file again.
func findSuffix(root, suffix string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(d.Name(), suffix) {
			return err
		}
		if info, err := d.Info(); err == nil && info.Size() > 0 {
			out = append(out, path)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}
