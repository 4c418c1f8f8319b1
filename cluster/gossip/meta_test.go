package gossip

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEncodeMetaLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		meta NodeMeta
		err  error
	}{
		{"typical", testMeta(1), nil},
		{"empty", NodeMeta{}, nil},
		{"rack too long", NodeMeta{ID: 1, Rack: strings.Repeat("r", 500)}, ErrMetaTooLarge},
		// Fits on its own but not with the leaving flag added later.
		{"no room to leave", NodeMeta{ID: 1, Rack: strings.Repeat("r", 512-len(`{"id":1,"rack":""}`))}, ErrMetaTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkMeta(tc.meta); !errors.Is(err, tc.err) {
				t.Fatalf("checkMeta: got %v, want %v", err, tc.err)
			}
			if tc.name == "no room to leave" {
				if _, err := encodeMeta(tc.meta, false); err != nil {
					t.Fatalf("without the leaving flag: %v", err)
				}
			}
			if tc.err != nil {
				return
			}
			b, err := encodeMeta(tc.meta, true)
			if err != nil {
				t.Fatal(err)
			}
			w, err := decodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if w.NodeMeta != tc.meta || !w.Leaving {
				t.Fatalf("round trip: got %+v", w)
			}
		})
	}
}

func TestStartRejectsLargeMeta(t *testing.T) {
	cfg := testConfig(1, "127.0.0.1:0")
	cfg.Meta.Rack = strings.Repeat("r", 600)
	if _, err := Start(cfg); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("Start: got %v, want ErrMetaTooLarge", err)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	good, _ := encodeMeta(testMeta(3), true)
	f.Add(good)
	f.Add([]byte(`{"id":-1,"extra":[1,2]}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := decodeMeta(b)
		if err != nil {
			return
		}
		if again, err := encodeMeta(w.NodeMeta, w.Leaving); err == nil {
			if w2, err := decodeMeta(again); err != nil || w2 != w {
				t.Fatalf("re-decode: %+v, %v; want %+v", w2, err, w)
			}
		}
	})
}

func TestIDFromName(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   int32
		ok   bool
	}{
		{"quire-0", 0, true},
		{"quire-2147483647", 2147483647, true},
		{"quire-2147483648", 0, false},
		{"quire--1", 0, false},
		{"quire-01", 0, false},
		{"quire-", 0, false},
		{"other-1", 0, false},
	} {
		id, ok := idFromName(tc.name)
		if id != tc.id || ok != tc.ok {
			t.Errorf("idFromName(%q) = %d, %v; want %d, %v", tc.name, id, ok, tc.id, tc.ok)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		ok     bool
	}{
		{"ok", func(*Config) {}, true},
		{"wildcard bind", func(c *Config) { c.BindAddr = ":7946" }, true},
		{"advertise", func(c *Config) { c.AdvertiseAddr = "10.0.0.1:7946" }, true},
		{"negative id", func(c *Config) { c.Meta.ID = -1 }, false},
		{"bind host name", func(c *Config) { c.BindAddr = "localhost:0" }, false},
		{"bind no port", func(c *Config) { c.BindAddr = "127.0.0.1" }, false},
		{"advertise wildcard", func(c *Config) { c.AdvertiseAddr = ":7946" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(1, "127.0.0.1:0")
			tc.modify(&cfg)
			if err := cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestRecordState(t *testing.T) {
	now := time.Now()
	const after = time.Second
	for _, tc := range []struct {
		name string
		r    record
		self bool
		want State
	}{
		{"acked", record{live: true, lastAck: now}, false, StateAlive},
		{"ack overdue", record{live: true, lastAck: now.Add(-2 * after)}, false, StateSuspect},
		{"self never suspect", record{live: true}, true, StateAlive},
		{"failed", record{}, false, StateDead},
		{"left", record{leaving: true}, false, StateLeft},
		{"leaving but still live", record{live: true, leaving: true, lastAck: now}, false, StateAlive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.state(tc.self, now, after); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
