package cluster

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/cluster/kafkaapi"
	"github.com/quirelog/quire/partition/batchtest"
	"github.com/quirelog/quire/transport/freeport"
)

var (
	fuzzOnce sync.Once
	fuzzAddr string
	fuzzErr  error
)

// fuzzNode starts one node per fuzz worker process, shared by its inputs.
// It is never closed: the worker process exits instead.
func fuzzNode(t *testing.T) string {
	fuzzOnce.Do(func() {
		dir, err := os.MkdirTemp("", "quire-fuzz-")
		if err != nil {
			fuzzErr = err
			return
		}
		cfg := DefaultConfig()
		cfg.DataDir = dir
		cfg.Kafka.Addr = "127.0.0.1:0"
		cfg.AdminAddr = ""
		// Fuzzing runs one node per worker process: no fixed ports.
		if cfg.NodeAddr, fuzzErr = freeport.Addr(); fuzzErr != nil {
			return
		}
		if cfg.GossipAddr, fuzzErr = freeport.Addr(); fuzzErr != nil {
			return
		}
		cfg.MaxPartitionsPerNode = 32
		cfg.Kafka.MaxRequestBytes = 1 << 20
		n, err := Start(cfg, hclog.NewNullLogger())
		if err != nil {
			fuzzErr = err
			return
		}
		fuzzAddr = n.KafkaAddr().String()
	})
	if fuzzErr != nil {
		t.Fatal(fuzzErr)
	}
	return fuzzAddr
}

// fuzzSeeds are well-formed requests for every served API at its lowest
// and highest version, so mutation starts deep inside each decoder.
func fuzzSeeds() [][]byte {
	topic := "fuzz"
	prod := kmsg.NewPtrProduceRequest()
	prod.Acks, prod.TimeoutMillis = -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = topic
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = batchtest.Batch(0, 1700000000000, []byte("a"), []byte("bb"))
	pt.Partitions = append(pt.Partitions, pp)
	prod.Topics = append(prod.Topics, pt)

	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxWaitMillis, fetch.MaxBytes = 10, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)

	lo := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)

	md := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = &topic
	md.Topics = append(md.Topics, mt)

	ct := kmsg.NewPtrCreateTopicsRequest()
	ctt := kmsg.NewCreateTopicsRequestTopic()
	ctt.Topic, ctt.NumPartitions, ctt.ReplicationFactor = topic, 2, 1
	ct.Topics = append(ct.Topics, ctt)
	ct.TimeoutMillis = 5000

	dt := kmsg.NewPtrDeleteTopicsRequest()
	dt.TopicNames = []string{"gone"}
	dtt := kmsg.NewDeleteTopicsRequestTopic()
	gone := "gone"
	dtt.Topic = &gone
	dt.Topics = append(dt.Topics, dtt)

	ip := kmsg.NewPtrInitProducerIDRequest()
	ol := kmsg.NewPtrOffsetForLeaderEpochRequest()
	olt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	olt.Topic = topic
	olp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	olp.LeaderEpoch, olp.CurrentLeaderEpoch = 1, -1
	olt.Partitions = append(olt.Partitions, olp)
	ol.Topics = append(ol.Topics, olt)

	var seeds [][]byte
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz"))
	for _, req := range []kmsg.Request{prod, fetch, lo, md, kmsg.NewPtrApiVersionsRequest(), ct, dt, ip, ol} {
		lo, hi, _ := kafkaapi.Versions(req.Key())
		for _, version := range []int16{lo, hi} {
			req.SetVersion(version)
			frame := f.AppendRequest(nil, req, 7)
			seeds = append(seeds, frame[4:])
		}
	}
	return seeds
}

// FuzzKafkaRequest sends one arbitrary frame body to a real node's Kafka
// listener. The node must answer with a well-formed response for the same
// correlation id or close the connection; a panic anywhere in decoding or
// dispatch fails the fuzz run.
func FuzzKafkaRequest(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if resp := exchange(t, fuzzNode(t), body); resp != nil {
			checkResponse(t, body, resp)
		}
	})
}

// TestFuzzSeedsAreAnswered keeps the fuzz seeds honest: each is a valid
// request that gets a decodable response, not a closed connection.
func TestFuzzSeedsAreAnswered(t *testing.T) {
	for _, body := range fuzzSeeds() {
		resp := exchange(t, fuzzNode(t), body)
		if resp == nil {
			t.Fatalf("%s v%d: connection closed", kmsg.NameForKey(int16(binary.BigEndian.Uint16(body))), binary.BigEndian.Uint16(body[2:]))
		}
		checkResponse(t, body, resp)
	}
}

// exchange sends one frame on a new connection, followed by an ApiVersions
// request, and returns the response to the frame, or nil when the node
// closed the connection instead. A frame that gets no response (Produce
// with acks=0) is detected by the ApiVersions response arriving first.
func exchange(t *testing.T, addr string, body []byte) []byte {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var corr uint32
	if len(body) >= 8 {
		corr = binary.BigEndian.Uint32(body[4:])
	}
	probeCorr := int32(corr + 1)
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	frame = append(frame, body...)
	// AppendRequest sizes the whole buffer it is given, so format apart.
	frame = append(frame, kmsg.NewRequestFormatter().AppendRequest(nil, kmsg.NewPtrApiVersionsRequest(), probeCorr)...)
	if _, err := c.Write(frame); err != nil {
		return nil // closed while we wrote: an oversized frame
	}
	resp, closed := readFrame(t, c)
	if closed {
		return nil
	}
	if len(resp) >= 4 && int32(binary.BigEndian.Uint32(resp)) == probeCorr && binary.BigEndian.Uint32(body[4:]) != uint32(probeCorr) {
		if !noResponseExpected(body) {
			t.Fatalf("request got no response: %x", body)
		}
		return nil
	}
	return resp
}

func readFrame(t *testing.T, c net.Conn) (resp []byte, closed bool) {
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err) {
			return nil, true // the node closed the connection: an accepted outcome
		}
		t.Fatalf("no response and no close: %v", err)
	}
	resp = make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, resp); err != nil {
		t.Fatalf("truncated response: %v", err)
	}
	return resp, false
}

// noResponseExpected reports whether body is a Produce request with
// acks=0, which Kafka never answers.
func noResponseExpected(body []byte) bool {
	if binary.BigEndian.Uint16(body) != 0 {
		return false
	}
	r := kbin.Reader{Src: body[8:]}
	r.NullableString()
	req := kmsg.NewPtrProduceRequest()
	req.Version = int16(binary.BigEndian.Uint16(body[2:]))
	if req.IsFlexible() {
		kmsg.SkipTags(&r)
	}
	return r.Ok() && req.ReadFrom(r.Src) == nil && req.Acks == 0
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// checkResponse decodes resp as the response to the request in body.
func checkResponse(t *testing.T, body, resp []byte) {
	if len(body) < 8 || len(resp) < 4 {
		t.Fatalf("response %x to a request too short to have a header", resp)
	}
	key := int16(binary.BigEndian.Uint16(body))
	version := int16(binary.BigEndian.Uint16(body[2:]))
	if got, want := binary.BigEndian.Uint32(resp), binary.BigEndian.Uint32(body[4:]); got != want {
		t.Fatalf("correlation id %d, want %d", got, want)
	}
	r := kmsg.ResponseForKey(key)
	if r == nil {
		t.Fatalf("response to unknown api key %d", key)
	}
	if lo, hi, _ := kafkaapi.Versions(key); version < lo || version > hi {
		if key != 18 {
			t.Fatalf("answered %s v%d, outside the served range", kmsg.NameForKey(key), version)
		}
		version = 0 // unsupported ApiVersions is answered at v0
	}
	r.SetVersion(version)
	payload := resp[4:]
	if r.IsFlexible() && key != 18 {
		if len(payload) == 0 || payload[0] != 0 {
			t.Fatalf("flexible response header tags %x", payload)
		}
		payload = payload[1:]
	}
	if err := r.ReadFrom(payload); err != nil {
		t.Fatalf("%s v%d response does not decode: %v", kmsg.NameForKey(key), version, err)
	}
}
