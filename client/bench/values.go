package bench

import (
	"crypto/rand"
	"fmt"
	"sync"
)

// poolBytes is the size of the random pool record values are cut from. A
// produce batch is at most a few MiB, so windows of a 64 MiB pool spread
// as below never overlap within one batch, and no codec finds anything to
// shrink. Every record getting the same value would let snappy (franz-go's
// default) shrink 1 KiB records ~20x, and the bench would measure the codec
// rather than the log.
const poolBytes = 64 << 20

var pool struct {
	once sync.Once
	b    []byte
	err  error
}

// randomPool fills the pool once per process: crypto/rand does about
// 1 GB/s, so doing it per record would cost the client more than the
// broker's work, while one 64 MiB fill costs well under a second.
func randomPool() ([]byte, error) {
	pool.once.Do(func() {
		pool.b = make([]byte, poolBytes)
		_, pool.err = rand.Read(pool.b)
	})
	return pool.b, pool.err
}

// Values hands out record values of one size, each a different window of
// the shared random pool. It is for one goroutine; the pool is read-only,
// so any number of Values may share it.
type Values struct {
	pool   []byte
	size   uint64
	span   uint64 // number of possible window starts
	stride uint64
	off    uint64
}

// NewValues returns the values for producer seq; different producers start
// at different places in the pool.
func NewValues(size, seq int) (*Values, error) {
	p, err := randomPool()
	if err != nil {
		return nil, err
	}
	if size < 0 || size > len(p)/16 {
		return nil, fmt.Errorf("bench: record size %d not in [0, %d]", size, len(p)/16)
	}
	span := uint64(len(p) - size + 1)
	v := &Values{pool: p, size: uint64(size), span: span, stride: goldenStride(span)}
	// Any start will do; a multiplicative hash keeps producers apart.
	v.off = (uint64(seq) * 0x9E3779B97F4A7C15) % span
	return v, nil
}

// goldenStride is about span/φ, nudged until it is coprime with span. A
// step of span/φ spreads any run of consecutive windows nearly evenly over
// the pool (the three-gap theorem): any n consecutive starts are more than
// span/(3n) apart, so in a batch of n values of size s, with n*s a few MiB,
// starts are several s apart and no two values share a byte. Being coprime, the
// walk visits every start before it repeats one.
func goldenStride(span uint64) uint64 {
	if span <= 2 {
		return 1
	}
	s := uint64(float64(span) * 0.6180339887498949)
	for gcd(s, span) != 1 {
		s++
	}
	return s
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Next is the next value: a slice of the pool, capped so that an append by
// whoever holds it cannot write into the pool.
func (v *Values) Next() []byte {
	off := v.off
	v.off = (v.off + v.stride) % v.span
	return v.pool[off : off+v.size : off+v.size]
}
