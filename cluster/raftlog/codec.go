package raftlog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/hashicorp/raft"
)

// A segment file is a sequence of rounds, one per commit (one write and
// one fdatasync). A round is a frame whose body is the frames of the
// records it made durable. Every frame is
//
//	magic u32 | body length u32 | body CRC u32 | header CRC u32 | body
//
// The header has its own checksum so that recovery can look for a valid
// round after a bad one without checksumming garbage at every offset. The
// records of an aligned round carry a body CRC of 0: the round's covers
// them.
// Rounds and records have different magics.
//
// A body is kind u8 | group name length u16 | group name | payload:
//
//	kindEntries: count u32, then per entry:
//	             length u32 | CRC u32 | index u64 | term u64 | type u8 |
//	             appended-at unix ns i64 | extensions length u32 |
//	             extensions | data
//	kindSet:     key length u16 | key | value
//	kindDelete:  min u64 | max u64 (inclusive, as raft.LogStore.DeleteRange)
//	kindDrop:    nothing: the group's entries and stable values are gone
//
// Each entry carries its own CRC so a read of one entry checks it without
// reading the whole frame.
//
// A round written since rounds were aligned ("QWR2") starts at a multiple
// of blockSize and is followed by zeros up to the next one, so that it can
// be written with O_DIRECT; an older round ("QWR1") follows the one before
// it directly. Both are read.
const (
	roundMagic        = 0x51575232 // "QWR2": block-aligned, zero padded
	unalignedRoundMag = 0x51575231 // "QWR1"
	frameMagic        = 0x51574c31 // "QWL1"
	frameHeader       = 16
	entryHeader       = 8  // length, CRC
	entryFixed        = 29 // index, term, type, appended-at, extensions length

	kindEntries byte = 1
	kindSet     byte = 2
	kindDelete  byte = 3
	kindDrop    byte = 4

	maxNameLen = 1<<16 - 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// appendRecord appends the frame of one record of an aligned round. Its
// body CRC is 0: the round's CRC covers the body, and a second pass over
// every byte in the committer bought nothing.
func appendRecord(dst, body []byte) []byte {
	h := recordHeader(len(body))
	return append(append(dst, h[:]...), body...)
}

// appendEntriesRecord appends the record of one StoreLogs, encoded
// straight from the entries (n is entriesBodyLen): no body is built apart
// and copied in.
func appendEntriesRecord(dst []byte, name string, logs []*raft.Log, n int) []byte {
	h := recordHeader(n)
	return appendEntriesBody(append(dst, h[:]...), name, logs)
}

func recordHeader(n int) [frameHeader]byte {
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[0:], frameMagic)
	binary.LittleEndian.PutUint32(h[4:], uint32(n))
	binary.LittleEndian.PutUint32(h[12:], checksum(h[:12]))
	return h
}

func putHeader(h []byte, magic uint32, body []byte) {
	binary.LittleEndian.PutUint32(h[0:], magic)
	binary.LittleEndian.PutUint32(h[4:], uint32(len(body)))
	binary.LittleEndian.PutUint32(h[8:], checksum(body))
	binary.LittleEndian.PutUint32(h[12:], checksum(h[:12]))
}

// startRound starts a round in dst: room for its header, which sealRound
// fills in once the record frames follow it.
func startRound(dst []byte) []byte { return append(dst, make([]byte, frameHeader)...) }

// sealRound fills in the header of the round that starts buf and pads
// it with zeros to a whole number of blocks. buf has the capacity.
func sealRound(buf []byte) []byte {
	putHeader(buf, roundMagic, buf[frameHeader:])
	n := len(buf)
	buf = buf[:alignUp(n)]
	clear(buf[n:])
	return buf
}

// blockSize is the unit of a direct write: rounds start, and their
// padding ends, at multiples of it. 4 KiB covers the logical block size
// of every disk and file system in use.
const blockSize = 4096

func alignUp[T int | int64](n T) T { return (n + blockSize - 1) &^ (blockSize - 1) }

// parseRound is parseHeader for either kind of round.
func parseRound(h []byte) (n, crc uint32, aligned, ok bool) {
	if n, crc, ok = parseHeader(h, roundMagic); ok {
		return n, crc, true, true
	}
	n, crc, ok = parseHeader(h, unalignedRoundMag)
	return n, crc, false, ok
}

// parseHeader returns the body length and CRC of the frame header h with
// the given magic, or false when h is not one.
func parseHeader(h []byte, magic uint32) (n uint32, crc uint32, ok bool) {
	if len(h) < frameHeader || binary.LittleEndian.Uint32(h) != magic {
		return 0, 0, false
	}
	if checksum(h[:12]) != binary.LittleEndian.Uint32(h[12:]) {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint32(h[4:]), binary.LittleEndian.Uint32(h[8:]), true
}

func bodyStart(kind byte, name string, extra int) []byte {
	b := make([]byte, 0, 3+len(name)+extra)
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
	return append(b, name...)
}

func entryLen(l *raft.Log) int {
	return entryHeader + entryFixed + len(l.Extensions) + len(l.Data)
}

// entriesBodyLen is the length of the entries body of logs.
func entriesBodyLen(name string, logs []*raft.Log) int {
	n := 3 + len(name) + 4
	for _, l := range logs {
		n += entryLen(l)
	}
	return n
}

// appendEntriesBody appends an entries body to dst.
func appendEntriesBody(dst []byte, name string, logs []*raft.Log) []byte {
	dst = append(dst, kindEntries)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(name)))
	dst = append(dst, name...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(logs)))
	for _, l := range logs {
		dst = appendEntry(dst, l)
	}
	return dst
}

func appendEntry(b []byte, l *raft.Log) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, uint32(entryLen(l)))
	b = binary.LittleEndian.AppendUint32(b, 0) // CRC, filled in below
	b = binary.LittleEndian.AppendUint64(b, l.Index)
	b = binary.LittleEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(at))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(l.Extensions)))
	b = append(b, l.Extensions...)
	b = append(b, l.Data...)
	binary.LittleEndian.PutUint32(b[start+4:], checksum(b[start+entryHeader:]))
	return b
}

// decodeEntry decodes one entry (starting at its length field) into out.
// out.Data and out.Extensions alias b.
func decodeEntry(b []byte, out *raft.Log) error {
	if len(b) < entryHeader+entryFixed {
		return fmt.Errorf("%w: entry of %d bytes", ErrDamaged, len(b))
	}
	n := binary.LittleEndian.Uint32(b)
	if int(n) != len(b) {
		return fmt.Errorf("%w: entry length %d, expected %d", ErrDamaged, n, len(b))
	}
	if checksum(b[entryHeader:]) != binary.LittleEndian.Uint32(b[4:]) {
		return fmt.Errorf("%w: entry checksum mismatch", ErrDamaged)
	}
	p := b[entryHeader:]
	out.Index = binary.LittleEndian.Uint64(p)
	out.Term = binary.LittleEndian.Uint64(p[8:])
	out.Type = raft.LogType(p[16])
	out.AppendedAt = time.Time{}
	if at := int64(binary.LittleEndian.Uint64(p[17:])); at != 0 {
		out.AppendedAt = time.Unix(0, at)
	}
	ext := binary.LittleEndian.Uint32(p[25:])
	rest := p[entryFixed:]
	if uint64(ext) > uint64(len(rest)) {
		return fmt.Errorf("%w: extensions overrun the entry", ErrDamaged)
	}
	out.Extensions = nil
	if ext > 0 {
		out.Extensions = rest[:ext]
	}
	out.Data = rest[ext:]
	return nil
}

func encodeSet(name string, key, val []byte) []byte {
	b := bodyStart(kindSet, name, 2+len(key)+len(val))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(key)))
	return append(append(b, key...), val...)
}

func encodeDelete(name string, min, max uint64) []byte {
	b := bodyStart(kindDelete, name, 16)
	b = binary.LittleEndian.AppendUint64(b, min)
	return binary.LittleEndian.AppendUint64(b, max)
}

func encodeDrop(name string) []byte { return bodyStart(kindDrop, name, 0) }

// record is a decoded body. For entries, offs holds each entry's offset
// in the body and ends its end.
type record struct {
	kind     byte
	name     string
	key, val []byte
	min, max uint64
	offs     []int
	ends     []int
	indexes  []uint64
}

// decodeBody parses a body whose checksum already matched. It still
// checks every length, since a checksum only says the bytes are the ones
// written.
func decodeBody(b []byte) (record, error) {
	var r record
	bad := func(what string) (record, error) {
		return record{}, fmt.Errorf("%w: %s", ErrDamaged, what)
	}
	if len(b) < 3 {
		return bad("short record")
	}
	r.kind = b[0]
	nl := int(binary.LittleEndian.Uint16(b[1:]))
	if len(b) < 3+nl {
		return bad("short group name")
	}
	r.name = string(b[3 : 3+nl])
	p := 3 + nl
	switch r.kind {
	case kindEntries:
		if len(b) < p+4 {
			return bad("short entries record")
		}
		count := int(binary.LittleEndian.Uint32(b[p:]))
		p += 4
		for i := 0; i < count; i++ {
			if len(b) < p+entryHeader+entryFixed {
				return bad("short entry")
			}
			n := int(binary.LittleEndian.Uint32(b[p:]))
			if n < entryHeader+entryFixed || len(b) < p+n {
				return bad("entry overruns its record")
			}
			r.offs = append(r.offs, p)
			r.ends = append(r.ends, p+n)
			r.indexes = append(r.indexes, binary.LittleEndian.Uint64(b[p+entryHeader:]))
			p += n
		}
	case kindSet:
		if len(b) < p+2 {
			return bad("short set record")
		}
		kl := int(binary.LittleEndian.Uint16(b[p:]))
		if len(b) < p+2+kl {
			return bad("short key")
		}
		r.key = b[p+2 : p+2+kl]
		r.val = b[p+2+kl:]
	case kindDelete:
		if len(b) < p+16 {
			return bad("short delete record")
		}
		r.min = binary.LittleEndian.Uint64(b[p:])
		r.max = binary.LittleEndian.Uint64(b[p+8:])
	case kindDrop:
	default:
		return bad(fmt.Sprintf("unknown record kind %d", r.kind))
	}
	return r, nil
}
