package client

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TxnProducerConfig is a transactional producer: acks=all, idempotent,
// writing to explicit partitions.
type TxnProducerConfig struct {
	Brokers         []string
	TransactionalID string
	ClientID        string
	// TxnTimeout is the transaction timeout the coordinator enforces
	// (franz-go's default 40s when zero).
	TxnTimeout      time.Duration
	MetadataMinAge  time.Duration
	RequestTimeout  time.Duration
	DeliveryTimeout time.Duration
}

// TxnProducer writes records inside transactions: Begin, Produce, End.
type TxnProducer struct {
	cl *kgo.Client
	// failed counts the current transaction's records that failed: such
	// a transaction can only be aborted. franz-go's EndTransaction does
	// not know of them, and commits nothing at all, answering success,
	// when no record of the transaction reached a partition.
	failed atomic.Int64
}

// NewTxnProducer connects a transactional producer. Its producer id is
// fetched (fencing any earlier producer of the same transactional id) on
// the first Begin.
func NewTxnProducer(cfg TxnProducerConfig) (*TxnProducer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("client: no brokers")
	}
	if cfg.TransactionalID == "" {
		return nil, errors.New("client: no transactional id")
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.TransactionalID(cfg.TransactionalID),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}
	opts = append(opts, commonOpts(cfg.ClientID, cfg.MetadataMinAge, cfg.RequestTimeout)...)
	if cfg.TxnTimeout > 0 {
		opts = append(opts, kgo.TransactionTimeout(cfg.TxnTimeout))
	}
	if cfg.DeliveryTimeout > 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &TxnProducer{cl: cl}, nil
}

// commonOpts are the client options every facade type sets the same way.
func commonOpts(clientID string, metadataMinAge, requestTimeout time.Duration) []kgo.Opt {
	var opts []kgo.Opt
	if clientID != "" {
		opts = append(opts, kgo.ClientID(clientID))
	}
	if metadataMinAge > 0 {
		opts = append(opts, kgo.MetadataMinAge(metadataMinAge))
	}
	if d := requestTimeout; d > 0 {
		opts = append(opts, kgo.ProduceRequestTimeout(d), kgo.RequestTimeoutOverhead(d/2))
	}
	return opts
}

// Begin starts a transaction.
func (p *TxnProducer) Begin() error {
	p.failed.Store(0)
	return p.cl.BeginTransaction()
}

// Produce queues one record of the transaction; done runs once it is
// written (not yet committed) or failed.
func (p *TxnProducer) Produce(ctx context.Context, topic string, partition int32, value []byte, done func(offset int64, err error)) {
	r := &kgo.Record{Topic: topic, Partition: partition, Value: value}
	p.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
		if err != nil {
			p.failed.Add(1)
		}
		done(r.Offset, err)
	})
}

// End flushes the transaction's records and commits it, or aborts it when
// commit is false or a record failed. committed says what was asked of
// the coordinator and answered without error; with an error the outcome
// is unknown unless the error says the transaction was aborted.
func (p *TxnProducer) End(ctx context.Context, commit bool) (committed bool, err error) {
	ferr := p.cl.Flush(ctx)
	how := kgo.TryCommit
	if !commit || ferr != nil || p.failed.Load() > 0 {
		how = kgo.TryAbort
		if err := p.cl.AbortBufferedRecords(ctx); err != nil {
			return false, err
		}
	}
	if err := p.cl.EndTransaction(ctx, how); err != nil {
		return false, err
	}
	return how == kgo.TryCommit, nil
}

// Close disconnects; a transaction left open is aborted by its timeout,
// or by the next producer of the same transactional id.
func (p *TxnProducer) Close() { p.cl.Close() }

// CopierConfig is a consume-transform-produce loop in one consumer group:
// it reads From with read_committed and writes every record's value to the
// same partition of To, committing the group's offsets in the same
// transaction as the copies (exactly once).
type CopierConfig struct {
	Brokers         []string
	TransactionalID string
	Group           string
	From, To        string
	ClientID        string
	SessionTimeout  time.Duration
	TxnTimeout      time.Duration
	MetadataMinAge  time.Duration
	RequestTimeout  time.Duration
}

// Copier copies with franz-go's GroupTransactSession.
type Copier struct {
	s  *kgo.GroupTransactSession
	to string
}

// NewCopier joins the group.
func NewCopier(cfg CopierConfig) (*Copier, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("client: no brokers")
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.TransactionalID(cfg.TransactionalID),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.From),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}
	opts = append(opts, commonOpts(cfg.ClientID, cfg.MetadataMinAge, cfg.RequestTimeout)...)
	if cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(cfg.SessionTimeout))
	}
	if cfg.TxnTimeout > 0 {
		opts = append(opts, kgo.TransactionTimeout(cfg.TxnTimeout))
	}
	s, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, err
	}
	return &Copier{s: s, to: cfg.To}, nil
}

// Step copies at most max records in one transaction: it polls, begins,
// produces the copies and ends. copied counts the records of the
// transaction and committed says whether it committed; on an error the
// outcome is unknown.
func (c *Copier) Step(ctx context.Context, max int) (copied int, committed bool, err error) {
	fs := c.s.PollRecords(ctx, max)
	if ctx.Err() != nil {
		return 0, false, ctx.Err()
	}
	if err := c.s.Begin(); err != nil {
		return 0, false, err
	}
	fs.EachRecord(func(r *kgo.Record) {
		c.s.Produce(ctx, &kgo.Record{Topic: c.to, Partition: r.Partition, Value: r.Value}, nil)
	})
	committed, err = c.s.End(ctx, kgo.TryCommit)
	return fs.NumRecords(), committed, err
}

// Close leaves the group.
func (c *Copier) Close() { c.s.Close() }
