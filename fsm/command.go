package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Partition-group command types: the first byte of every Raft entry.
const (
	cmdProduce byte = 1
	cmdMarker  byte = 2
	// cmdExpireProducers forgets idle producers (see ExpireProducers).
	cmdExpireProducers byte = 3
	// cmdTrimPrefix moves the log start offset (see TrimPrefix).
	cmdTrimPrefix byte = 4
	// cmdCompact raises the compaction target (see Compact).
	cmdCompact byte = 5
)

// ProduceCommand packs record batches (already validated by the leader)
// into one Raft entry: the unit of group commit.
//
// Layout: cmdProduce, uint32 count (big-endian), then per batch uvarint
// length + bytes. The count has a fixed width so the command is built in
// place, without a final copy.
type ProduceCommand struct {
	buf   []byte
	count int
}

const produceHeaderSize = 5

// NewProduceCommand starts a command with room for sizeHint bytes of batches.
func NewProduceCommand(sizeHint int) *ProduceCommand {
	buf := make([]byte, produceHeaderSize, produceHeaderSize+sizeHint+64)
	buf[0] = cmdProduce
	return &ProduceCommand{buf: buf}
}

// Add appends one batch.
func (c *ProduceCommand) Add(batch []byte) {
	c.buf = binary.AppendUvarint(c.buf, uint64(len(batch)))
	c.buf = append(c.buf, batch...)
	c.count++
}

// Len is the number of batches added.
func (c *ProduceCommand) Len() int { return c.count }

// Size is the encoded size so far.
func (c *ProduceCommand) Size() int { return len(c.buf) }

// Bytes returns the encoded command; it aliases the command's buffer, so
// add nothing after calling it.
func (c *ProduceCommand) Bytes() []byte {
	binary.BigEndian.PutUint32(c.buf[1:], uint32(c.count))
	return c.buf
}

var errBadCommand = errors.New("undecodable command")

// decodeProduce splits a produce command into its batches, which alias data.
func decodeProduce(data []byte) ([][]byte, error) {
	if len(data) < produceHeaderSize || data[0] != cmdProduce {
		return nil, errBadCommand
	}
	n := uint64(binary.BigEndian.Uint32(data[1:]))
	data = data[produceHeaderSize:]
	if n > uint64(len(data)) {
		return nil, fmt.Errorf("%w: batch count", errBadCommand)
	}
	batches := make([][]byte, 0, n)
	for i := uint64(0); i < n; i++ {
		size, k := binary.Uvarint(data)
		if k <= 0 || size > uint64(len(data)-k) {
			return nil, fmt.Errorf("%w: batch %d length", errBadCommand, i)
		}
		batches = append(batches, data[k:k+int(size)])
		data = data[k+int(size):]
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadCommand, len(data))
	}
	return batches, nil
}
