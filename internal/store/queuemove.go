package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// QueueMove moves the items seqs of queue from to the end of queue to, in
// one transaction, as new items (no attempts, due at once) whose event's
// By is set to by. Seqs no longer in from are passed over. It returns how
// many items moved; the observers hear of them as events queued on to, so
// to's consumer wakes up.
//
// A feed keeps the reports a peer refused for a reason its administrator
// can fix this way (feed/PEER to refused/PEER), and puts them back once it
// is fixed: a move, rather than an acknowledgement and an Enqueue, cannot
// lose an item or keep it twice across a crash.
func (db *DB) QueueMove(from, to string, seqs []uint64, by string) (int, error) {
	if err := validQueueName(from); err != nil {
		return 0, err
	}
	if err := validQueueName(to); err != nil {
		return 0, err
	}
	if from == to {
		return 0, fmt.Errorf("move items of queue %s: source and destination are the same queue", from)
	}
	var (
		e     *effects
		moved int
	)
	err := db.batch(func(tx *bolt.Tx) error {
		e, moved = db.newEffects(), 0
		b := bucketsOf(tx)
		src := b.queues.Bucket([]byte(from))
		if src == nil {
			return nil
		}
		for _, seq := range seqs {
			key := seqKey(seq)
			v := src.Get(key)
			if v == nil {
				continue
			}
			it, err := decodeItem(key, v)
			if err != nil {
				return err
			}
			if err := src.Delete(key); err != nil {
				return err
			}
			if err := addCounter(b.meta, depthPrefix+from, -1); err != nil {
				return err
			}
			ev := it.Event
			ev.By = by
			if err := e.enqueue(b, []string{to}, ev); err != nil {
				return err
			}
			moved++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("move items from queue %s to %s: %w", from, to, err)
	}
	db.committed(e)
	return moved, nil
}

// QueueTrim drops the oldest items of queue until at most keep are left,
// and returns how many it dropped: for a queue that only remembers, with a
// bound on what it may hold.
func (db *DB) QueueTrim(queue string, keep int) (int, error) {
	if err := validQueueName(queue); err != nil {
		return 0, err
	}
	keep = max(keep, 0)
	dropped := 0
	err := db.batch(func(tx *bolt.Tx) error {
		dropped = 0
		b := bucketsOf(tx)
		q := b.queues.Bucket([]byte(queue))
		if q == nil {
			return nil
		}
		excess := int(getCounter(b.meta, depthPrefix+queue)) - keep
		c := q.Cursor()
		for k, _ := c.First(); k != nil && dropped < excess; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			dropped++
		}
		return addCounter(b.meta, depthPrefix+queue, -int64(dropped))
	})
	if err != nil {
		return 0, fmt.Errorf("trim queue %s: %w", queue, err)
	}
	return dropped, nil
}

// QueueReschedule makes every item of queue due no later than at (an item
// due earlier keeps its time), without counting an attempt, and returns
// how many it changed: "retry now" for items a consumer put off.
func (db *DB) QueueReschedule(queue string, at time.Time) (int, error) {
	if err := validQueueName(queue); err != nil {
		return 0, err
	}
	changed := 0
	err := db.batch(func(tx *bolt.Tx) error {
		changed = 0
		q := tx.Bucket([]byte(bucketQueues)).Bucket([]byte(queue))
		if q == nil {
			return nil
		}
		type put struct{ k, v []byte }
		var puts []put // bbolt forbids changing a bucket under a cursor's Next
		err := q.ForEach(func(k, v []byte) error {
			it, err := decodeItem(k, v)
			if err != nil {
				return err
			}
			if !it.NextAttempt.After(at) {
				return nil
			}
			it.NextAttempt = at
			puts = append(puts, put{append([]byte(nil), k...), encodeItem(it)})
			return nil
		})
		if err != nil {
			return err
		}
		for _, p := range puts {
			if err := q.Put(p.k, p.v); err != nil {
				return err
			}
		}
		changed = len(puts)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reschedule queue %s: %w", queue, err)
	}
	return changed, nil
}
