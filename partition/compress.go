package partition

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Batch compression codecs, the low bits of the attributes.
const (
	codecNone   = 0
	codecGzip   = 1
	codecSnappy = 2
	codecLZ4    = 3
	codecZstd   = 4
)

// maxDecompressed bounds what one batch may inflate to, so a small
// hostile batch cannot take the broker's memory.
const maxDecompressed = 256 << 20

// xerialMagic starts snappy data in the framing Java clients write
// (xerial snappy-java): a header, then blocks each prefixed by its length.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

var zstdDecoders = sync.Pool{New: func() any {
	d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxDecompressed))
	return d
}}

// inflating bounds the batches being decompressed at once, so that the
// per-batch bound also bounds the memory all of them take.
var inflating = make(chan struct{}, 2)

// decompress inflates a batch's records section written with codec.
func decompress(codec int8, data []byte) ([]byte, error) {
	if codec == codecNone {
		return data, nil
	}
	inflating <- struct{}{}
	defer func() { <-inflating }()
	switch codec {
	case codecGzip:
		r, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		return readBounded(r)
	case codecSnappy:
		if bytes.HasPrefix(data, xerialMagic) {
			return unxerial(data)
		}
		return snappyBlock(data)
	case codecLZ4:
		return readBounded(lz4.NewReader(bytes.NewReader(data)))
	case codecZstd:
		d := zstdDecoders.Get().(*zstd.Decoder)
		defer zstdDecoders.Put(d)
		out, err := d.DecodeAll(data, nil)
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown compression codec %d", codec)
}

func readBounded(r io.Reader) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, maxDecompressed+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxDecompressed {
		return nil, fmt.Errorf("batch inflates past %d bytes", maxDecompressed)
	}
	return out, nil
}

func snappyBlock(data []byte) ([]byte, error) {
	n, err := snappy.DecodedLen(data)
	if err != nil {
		return nil, err
	}
	if n > maxDecompressed {
		return nil, fmt.Errorf("batch inflates to %d bytes", n)
	}
	return snappy.Decode(nil, data)
}

// unxerial reads xerial framing: the 8-byte magic, two 4-byte versions,
// then blocks of a 4-byte length and that much raw snappy.
func unxerial(data []byte) ([]byte, error) {
	const header = 16
	if len(data) < header {
		return nil, fmt.Errorf("xerial snappy header truncated")
	}
	var out []byte
	for rest := data[header:]; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, fmt.Errorf("xerial snappy block length truncated")
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(n) > uint64(len(rest)) {
			return nil, fmt.Errorf("xerial snappy block of %d bytes truncated", n)
		}
		block, err := snappyBlock(rest[:n])
		if err != nil {
			return nil, err
		}
		if len(out)+len(block) > maxDecompressed {
			return nil, fmt.Errorf("batch inflates past %d bytes", maxDecompressed)
		}
		out = append(out, block...)
		rest = rest[n:]
	}
	return out, nil
}
