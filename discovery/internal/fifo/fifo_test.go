package fifo_test

import (
	"sync"
	"testing"

	"github.com/dislog/dislog/discovery/internal/fifo"
	"github.com/matryer/is"
)

func TestPopReturnsValuesInPushOrder(t *testing.T) {
	is := is.New(t)
	q := fifo.New[int]()
	for i := range 5000 {
		q.Push(i)
	}
	is.Equal(q.Len(), 5000)
	done := make(chan struct{})
	for i := range 5000 {
		v, ok := q.Pop(done)
		is.True(ok)
		is.Equal(v, i)
	}
	is.Equal(q.Len(), 0)
}

func TestPopReturnsFalseWhenDoneIsClosedOnAnEmptyQueue(t *testing.T) {
	is := is.New(t)
	q := fifo.New[string]()
	done := make(chan struct{})
	close(done)
	_, ok := q.Pop(done)
	is.True(!ok)
}

func TestASlowConsumerNeverBlocksTheProducerAndLosesNothing(t *testing.T) {
	is := is.New(t)
	q := fifo.New[int]()
	const n = 20000
	release := make(chan struct{})
	got := make([]int, 0, n)
	var wg sync.WaitGroup
	wg.Go(func() {
		<-release // the consumer is stuck until the producer has pushed everything
		done := make(chan struct{})
		for range n {
			v, ok := q.Pop(done)
			if !ok {
				return
			}
			got = append(got, v)
		}
	})
	for i := range n {
		q.Push(i)
	}
	close(release)
	wg.Wait()
	is.Equal(len(got), n)
	for i, v := range got {
		if v != i {
			t.Fatalf("value %d is %d: order lost", i, v)
		}
	}
}

func TestInterleavedPushAndPopKeepOrderAcrossCompaction(t *testing.T) {
	is := is.New(t)
	q := fifo.New[int]()
	done := make(chan struct{})
	next, want := 0, 0
	for round := range 50 {
		for range 100 + round {
			q.Push(next)
			next++
		}
		for range 90 {
			v, ok := q.Pop(done)
			is.True(ok)
			is.Equal(v, want)
			want++
		}
	}
	for q.Len() > 0 {
		v, _ := q.Pop(done)
		is.Equal(v, want)
		want++
	}
	is.Equal(want, next)
}
