package main

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/quirelog/quire/partition/batchtest"
)

// rawConn speaks Kafka frames directly, so tests can send what no client
// library would.
type rawConn struct {
	t    *testing.T
	c    net.Conn
	corr int32
}

func dialRaw(t *testing.T, addr string) *rawConn {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

func (r *rawConn) sendFrame(frame []byte) {
	r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write(frame); err != nil {
		r.t.Fatal(err)
	}
}

// roundTrip sends req and decodes the response into resp.
func (r *rawConn) roundTrip(req kmsg.Request, resp kmsg.Response) {
	r.t.Helper()
	r.corr++
	r.sendFrame(kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw")).AppendRequest(nil, req, r.corr))
	body := r.readFrame()
	if body == nil {
		r.t.Fatalf("connection closed instead of a %s response", kmsg.NameForKey(req.Key()))
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != r.corr {
		r.t.Fatalf("correlation id %d, want %d", got, r.corr)
	}
	body = body[4:]
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && req.Key() != 18 {
		body = body[1:] // empty header tags
	}
	if err := resp.ReadFrom(body); err != nil {
		r.t.Fatalf("decode %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
}

// readFrame returns the next response body, or nil if the broker closed the
// connection.
func (r *rawConn) readFrame() []byte {
	r.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(r.c, size[:]); err != nil {
		return nil
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(r.c, body); err != nil {
		return nil
	}
	return body
}

func (r *rawConn) expectClosed() {
	r.t.Helper()
	if b := r.readFrame(); b != nil {
		r.t.Fatalf("expected the connection to close, got a %d-byte response", len(b))
	}
}

func produceReq(topic string, part int32, records []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 7
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = part
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func produceCode(t *testing.T, addr string, req *kmsg.ProduceRequest) (int16, int64) {
	t.Helper()
	rc := dialRaw(t, addr)
	resp := kmsg.NewPtrProduceResponse()
	rc.roundTrip(req, resp)
	p := resp.Topics[0].Partitions[0]
	return p.ErrorCode, p.BaseOffset
}

// TestBadInput sends malformed and invalid requests to a real broker: each
// gets its Kafka error code or a closed connection, the process survives,
// and the data written before is intact.
func TestBadInput(t *testing.T) {
	b := newBroker(t, "--max-request-bytes", "1048576")
	createTopic(t, b.kafkaAddr, "good", 1)
	good := batchtest.Batch(0, 1000, []byte("first"), []byte("second"))
	if code, off := produceCode(t, b.kafkaAddr, produceReq("good", 0, good)); code != 0 || off != 0 {
		t.Fatalf("good produce: code %d offset %d", code, off)
	}

	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-1] ^= 0xff
	truncated := good[:len(good)-3]
	// A valid CRC over a record count the offsets do not match: it once
	// reached an allocation sized by the count.
	miscounted := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(miscounted[57:], 0xffffffff)
	binary.BigEndian.PutUint32(miscounted[17:], crc32.Checksum(miscounted[21:], crc32.MakeTable(crc32.Castagnoli)))
	codes := []struct {
		name string
		req  *kmsg.ProduceRequest
		want int16
	}{
		{"bad crc", produceReq("good", 0, corrupt), kerr.CorruptMessage.Code},
		{"truncated batch", produceReq("good", 0, truncated), kerr.CorruptMessage.Code},
		{"record count against its offsets", produceReq("good", 0, miscounted), kerr.InvalidRecord.Code},
		{"unknown topic", produceReq("nope", 0, good), kerr.UnknownTopicOrPartition.Code},
		{"bad partition", produceReq("good", 7, good), kerr.UnknownTopicOrPartition.Code},
		{"negative partition", produceReq("good", -1, good), kerr.UnknownTopicOrPartition.Code},
		{"bad acks", func() *kmsg.ProduceRequest { r := produceReq("good", 0, good); r.Acks = 3; return r }(), kerr.InvalidRequiredAcks.Code},
	}
	for _, c := range codes {
		if got, _ := produceCode(t, b.kafkaAddr, c.req); got != c.want {
			t.Errorf("%s: error code %d, want %d", c.name, got, c.want)
		}
	}
	closes := []struct {
		name  string
		frame []byte
	}{
		{"oversized frame", binary.BigEndian.AppendUint32(nil, 64<<20)},
		{"tiny frame", []byte{0, 0, 0, 2, 0, 0}},
		{"unknown api key", frameOf(binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 999), 0), 1)},
		{"produce v99", frameOf(binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), 99), 1)},
		{"garbage produce body", frameOf(binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), 7), 1, 0xde, 0xad, 0xbe, 0xef)},
	}
	for _, c := range closes {
		rc := dialRaw(t, b.kafkaAddr)
		rc.sendFrame(c.frame)
		rc.expectClosed()
	}

	// ApiVersions at a version we do not know: UNSUPPORTED_VERSION in v0,
	// with only ApiVersions' own range, the version to retry with
	// (KIP-511).
	rc := dialRaw(t, b.kafkaAddr)
	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 42
	rc.corr++
	rc.sendFrame(kmsg.NewRequestFormatter().AppendRequest(nil, av, rc.corr))
	body := rc.readFrame()
	avResp := kmsg.NewPtrApiVersionsResponse()
	avResp.Version = 0
	if body == nil || avResp.ReadFrom(body[4:]) != nil || avResp.ErrorCode != kerr.UnsupportedVersion.Code ||
		len(avResp.ApiKeys) != 1 || avResp.ApiKeys[0].ApiKey != 18 || avResp.ApiKeys[0].MaxVersion != 4 {
		t.Fatalf("ApiVersions v42: %+v", avResp)
	}

	if !b.alive() {
		t.Fatalf("broker died; log:\n%s", b.log())
	}
	// The data written before the abuse is intact and nothing was added.
	got := consumeAll(t, b.kafkaAddr, "good", 2)
	if len(got[0]) != 2 || string(got[0][0].value) != "first" || string(got[0][1].value) != "second" {
		t.Fatalf("stored data changed: %+v", got)
	}
	if ends := listEndsAddr(t, b.kafkaAddr, "good"); ends[0] != 2 {
		t.Fatalf("high watermark %d after bad input, want 2", ends[0])
	}
}

// TestMessageTooLarge: a batch over max.message.bytes is refused.
func TestMessageTooLarge(t *testing.T) {
	b := newBroker(t, "--max-message-bytes", "2048")
	createTopic(t, b.kafkaAddr, "small", 1)
	big := batchtest.Batch(0, 1000, bytes.Repeat([]byte("x"), 4096))
	if code, _ := produceCode(t, b.kafkaAddr, produceReq("small", 0, big)); code != kerr.MessageTooLarge.Code {
		t.Fatalf("error code %d, want MESSAGE_TOO_LARGE", code)
	}
}

// frameOf builds a frame: api key+version, correlation id, null client id,
// then extra body bytes.
func frameOf(keyVersion []byte, corr int32, body ...byte) []byte {
	payload := append([]byte(nil), keyVersion...)
	payload = binary.BigEndian.AppendUint32(payload, uint32(corr))
	payload = append(payload, 0xff, 0xff) // null client id
	payload = append(payload, body...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}
