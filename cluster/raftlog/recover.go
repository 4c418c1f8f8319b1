package raftlog

import (
	"fmt"
	"os"
	"path/filepath"
)

// sectorSize is the unit a torn write loses: a crash leaves each sector
// of an unfinished write either written or reading as zeros.
const sectorSize = 512

// recover replays every segment in order.
func (l *Log) recover() error {
	ids, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	for i, id := range ids {
		f, err := os.OpenFile(segmentPath(l.dir, id), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		seg := &segment{id: id, f: f}
		l.segs = append(l.segs, seg)
		if err := l.replaySegment(seg, i == len(ids)-1); err != nil {
			return fmt.Errorf("segment %s: %w", filepath.Base(f.Name()), err)
		}
	}
	return nil
}

func (l *Log) replaySegment(seg *segment, last bool) error {
	data, err := os.ReadFile(seg.f.Name())
	if err != nil {
		return err
	}
	var p int64
	for p < int64(len(data)) {
		if end, aligned, ok := wholeRound(data, p); ok {
			if err := l.replayRound(data[p:end], seg, p, aligned); err != nil {
				return fmt.Errorf("round at offset %d: %w", p, err)
			}
			p = end
			if aligned {
				// The padding went to disk in the same write as the round
				// (a torn one reads as zeros): anything else is damage.
				q := min(alignUp(end), int64(len(data)))
				if !allZero(data[end:q]) {
					return fmt.Errorf("%w: bytes in the padding after the round ending at offset %d", ErrDamaged, end)
				}
				p = q
			}
			continue
		}
		// Rounds written before rounds were aligned end anywhere; the
		// first aligned round after them starts at the next block, past
		// a hole that reads as zeros.
		if q := alignUp(p); q != p && q < int64(len(data)) && allZero(data[p:q]) {
			if _, _, aligned, ok := parseRound(data[q:]); ok && aligned {
				p = q
				continue
			}
		}
		if _, ok := wholeFrame(data, p, frameMagic); ok {
			return fmt.Errorf("a record outside any round at offset %d: the log was written by a development build of Quire (062a931) whose format this one does not read; move %s aside", p, l.dir)
		}
		if !last || !tornAt(data, p) {
			return fmt.Errorf("%w: bad round at offset %d", ErrDamaged, p)
		}
		l.opts.Logger.Warn("cutting off a write a crash interrupted at the end of the Raft log", "segment", filepath.Base(seg.f.Name()), "offset", p, "bytes", int64(len(data))-p)
		if err := seg.f.Truncate(p); err != nil {
			return err
		}
		if err := fdatasync(seg.f); err != nil {
			return err
		}
		break
	}
	seg.size = p
	return nil
}

// replayRound applies the records of one round whose checksum matched;
// pos is the round's offset in the segment. The records of an unaligned
// round have checksums of their own.
func (l *Log) replayRound(round []byte, seg *segment, pos int64, aligned bool) error {
	for p := int64(frameHeader); p < int64(len(round)); {
		n, crc, ok := parseHeader(round[p:], frameMagic)
		end := p + frameHeader + int64(n)
		if !ok || end > int64(len(round)) || !aligned && checksum(round[p+frameHeader:end]) != crc {
			return fmt.Errorf("%w: bad record at offset %d", ErrDamaged, pos+p)
		}
		if err := l.apply(round[p+frameHeader:end], seg, pos+p+frameHeader, nil); err != nil {
			return err
		}
		p = end
	}
	return nil
}

// wholeFrame reports whether a valid frame with the given magic starts at
// p, and where it ends.
func wholeFrame(data []byte, p int64, magic uint32) (int64, bool) {
	n, crc, ok := parseHeader(data[p:], magic)
	if !ok {
		return 0, false
	}
	return frameEnd(data, p, n, crc)
}

// wholeRound is wholeFrame for a round of either kind.
func wholeRound(data []byte, p int64) (end int64, aligned, ok bool) {
	n, crc, aligned, ok := parseRound(data[p:])
	if !ok {
		return 0, false, false
	}
	end, ok = frameEnd(data, p, n, crc)
	return end, aligned, ok
}

func frameEnd(data []byte, p int64, n, crc uint32) (int64, bool) {
	end := p + frameHeader + int64(n)
	return end, end <= int64(len(data)) && checksum(data[p+frameHeader:end]) == crc
}

// tornAt reports whether the bad round at p of a log's last segment is a
// write a crash interrupted, which was never acknowledged, rather than
// damage to one that was. A round is one write, so a torn one is the last
// round, and the sectors of it that did not reach the disk read as zeros
// (or are missing): its header is short, or runs past the end of the file,
// or some sector of it is all zeros. This is how etcd's WAL tells them
// apart. A whole round that fails its checksum, bytes after the round
// other than an aligned round's zero padding, or any valid round after p,
// are damage.
func tornAt(data []byte, p int64) bool {
	for q := p + 1; q+frameHeader <= int64(len(data)); q++ {
		if _, _, ok := wholeRound(data, q); ok {
			return false
		}
	}
	if int64(len(data))-p < frameHeader {
		return true // an unfinished round was never acknowledged
	}
	n, _, aligned, ok := parseRound(data[p:])
	if !ok {
		// A lost header reads as zeros in its own sector(s); a header
		// that is there but wrong is damage.
		for s := p / sectorSize * sectorSize; s < p+frameHeader; s += sectorSize {
			if allZero(data[max(s, p):min(s+sectorSize, int64(len(data)))]) {
				return true
			}
		}
		return false
	}
	end := p + frameHeader + int64(n)
	limit := int64(len(data))
	if aligned && end < limit && limit <= alignUp(end) && allZero(data[end:]) {
		limit = end // the round's own padding
	}
	switch {
	case end > limit:
		return true
	case end < limit:
		// A later write began, and writes start only once the one before
		// is durable: this round was whole, so a defect in it is damage.
		return false
	}
	for s := p / sectorSize * sectorSize; s < end; s += sectorSize {
		// A sliver of a sector is too short to tell a lost sector from
		// data that ends in a few zeros (a Kafka record ends in a zero
		// header count); reading it as damage costs a rebuild, while
		// reading damage as torn would cut an acknowledged write.
		if chunk := data[max(s, p):min(s+sectorSize, end)]; len(chunk) >= minZeroRun && allZero(chunk) {
			return true
		}
	}
	return false
}

const minZeroRun = 16

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
