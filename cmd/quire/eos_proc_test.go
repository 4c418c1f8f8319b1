package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestHelperTxnCopier is not a test: run as a child process by
// TestExactlyOnceUnderFaults, it copies one topic to another in
// transactions (franz-go's GroupTransactSession: the input offsets are
// committed in the same transaction as the output), until it is killed.
func TestHelperTxnCopier(t *testing.T) {
	brokers := os.Getenv("QUIRE_HELPER_TXN_BROKERS")
	if brokers == "" {
		t.Skip("run by TestExactlyOnceUnderFaults")
	}
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.TransactionalID("eos-copier"),
		kgo.ConsumerGroup("eos-copier"),
		kgo.ConsumeTopics(os.Getenv("QUIRE_HELPER_TXN_IN")),
		kgo.DefaultProduceTopic(os.Getenv("QUIRE_HELPER_TXN_OUT")),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.SessionTimeout(6*time.Second),
		kgo.RebalanceTimeout(10*time.Second),
		kgo.TransactionTimeout(20*time.Second),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w := bufio.NewWriter(os.Stdout)
	for {
		// Small transactions, a little apart, so that the faults land
		// while the copy is under way.
		fs := sess.PollRecords(ctx, 20)
		time.Sleep(200 * time.Millisecond)
		if err := sess.Begin(); err != nil {
			fmt.Fprintf(w, "begin: %v\n", err)
			w.Flush()
			continue
		}
		fs.EachRecord(func(r *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value}, nil)
		})
		committed, err := sess.End(ctx, kgo.TryCommit)
		fmt.Fprintf(w, "end: committed %v, %d records, error %v\n", committed, fs.NumRecords(), err)
		w.Flush()
	}
}

// startCopier runs TestHelperTxnCopier in a child process and returns
// the func that kills it with SIGKILL.
func startCopier(t *testing.T, bs []*broker, in, out string) func() {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTxnCopier$")
	cmd.Env = append(os.Environ(), "QUIRE_HELPER_TXN_BROKERS="+strings.Join(seeds(bs), ","),
		"QUIRE_HELPER_TXN_IN="+in, "QUIRE_HELPER_TXN_OUT="+out)
	logf, err := os.CreateTemp(t.TempDir(), "copier-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(func() {
		kill()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("copier log:\n%s", tail(string(b), 40))
		}
	})
	return kill
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// committedValues reads the topic from the start as a read_committed
// consumer, until a poll brings nothing more.
func committedValues(t *testing.T, bs []*broker, topic string) []string {
	t.Helper()
	cl := mustClient(t, bs, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	defer cl.Close()
	var got []string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		before := len(got)
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		if len(got) == before {
			break
		}
	}
	return got
}

// Exactly-once under faults: a transactional copier (consume, transform,
// produce, commit the input offsets in the same transaction) is killed -9
// and restarted, and the leader of an output partition is killed -9, while
// it copies. A read_committed reader finds every input record in the
// output exactly once.
func TestExactlyOnceUnderFaults(t *testing.T) {
	bs := startCluster(t, 3)
	adm := kadm.NewClient(mustClient(t, bs))
	const in, out, n = "eos-in", "eos-out", 600
	createTopicWith(t, adm, 30*time.Second, in, 3, 3)
	createTopicWith(t, adm, 30*time.Second, out, 3, 3)
	prod := mustClient(t, bs, kgo.DefaultProduceTopic(in))
	for i := 0; i < n; i++ {
		prod.Produce(testCtx(t, time.Minute), kgo.StringRecord(fmt.Sprintf("rec-%04d", i)), nil)
	}
	if err := prod.Flush(testCtx(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	// waitCopied waits until the output's read_committed end offsets add
	// up to atLeast: records plus the markers among them, a cheap measure
	// of progress.
	waitCopied := func(atLeast int64, d time.Duration) {
		t.Helper()
		deadline := time.Now().Add(d)
		for {
			ends, err := adm.ListCommittedOffsets(testCtx(t, 30*time.Second), out)
			var sum int64
			if err == nil {
				ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
			}
			if sum >= atLeast {
				t.Logf("%s: output end offsets add up to %d", time.Since(began).Round(time.Millisecond), sum)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("output end offsets add up to %d, not %d, after %s", sum, atLeast, d)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	kill := startCopier(t, bs, in, out)
	waitCopied(n/10, 90*time.Second)
	kill()
	startCopier(t, bs, in, out)
	waitCopied(n/2, 90*time.Second)
	leader := waitLeader(t, adm, out)
	bs[leader-1].kill9()
	// Every record and at least one marker per partition.
	waitCopied(n+3, 2*time.Minute)
	deadline := time.Now().Add(2 * time.Minute)
	for len(committedValues(t, bs, out)) < n && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	got := committedValues(t, bs, out)
	seen := map[string]int{}
	for _, v := range got {
		seen[v]++
	}
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("rec-%04d", i)
		if seen[v] != 1 {
			t.Errorf("%s copied %d times", v, seen[v])
		}
	}
	if len(got) != n {
		t.Fatalf("output holds %d committed records, want %d", len(got), n)
	}
}
