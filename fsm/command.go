package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Partition-group command types: the first byte of every Raft entry.
const (
	cmdProduce byte = 1
)

// ProduceCommand packs record batches (already validated by the leader)
// into one Raft entry: the unit of group commit.
//
// Layout: cmdProduce, uvarint count, then per batch uvarint length + bytes.
type ProduceCommand struct {
	buf   []byte
	count int
}

// NewProduceCommand starts a command with room for sizeHint bytes of batches.
func NewProduceCommand(sizeHint int) *ProduceCommand {
	return &ProduceCommand{buf: make([]byte, 0, sizeHint+64)}
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
func (c *ProduceCommand) Size() int { return len(c.buf) + binary.MaxVarintLen64 + 1 }

// Bytes encodes the command.
func (c *ProduceCommand) Bytes() []byte {
	out := make([]byte, 0, len(c.buf)+binary.MaxVarintLen64+1)
	out = append(out, cmdProduce)
	out = binary.AppendUvarint(out, uint64(c.count))
	return append(out, c.buf...)
}

var errBadCommand = errors.New("undecodable command")

// decodeProduce splits a produce command into its batches, which alias data.
func decodeProduce(data []byte) ([][]byte, error) {
	if len(data) == 0 || data[0] != cmdProduce {
		return nil, errBadCommand
	}
	data = data[1:]
	n, k := binary.Uvarint(data)
	if k <= 0 || n > uint64(len(data)) {
		return nil, fmt.Errorf("%w: batch count", errBadCommand)
	}
	data = data[k:]
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
