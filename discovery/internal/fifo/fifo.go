// Package fifo is an unbounded first-in first-out queue that one goroutine fills and another drains.
//
// Serf sends member events on a channel while it holds its member lock, so a reader that stops reading
// stalls gossip and, past Serf's own buffers, loses events. The discovery package puts a Queue between
// Serf and the user's handler: Push never blocks, so Serf is drained at once however slow the handler is.
package fifo

import "sync"

// Queue holds values in the order they were pushed. The zero value is not usable; call New.
type Queue[T any] struct {
	mu    sync.Mutex
	items []T
	head  int
	ready chan struct{} // holds a token while items is non-empty, so a waiter never misses a push
}

// New returns an empty queue.
func New[T any]() *Queue[T] {
	return &Queue[T]{ready: make(chan struct{}, 1)}
}

// Push appends v. It never blocks.
func (q *Queue[T]) Push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Pop removes and returns the oldest value, waiting until there is one or done is closed. ok is false
// only when done was closed first.
func (q *Queue[T]) Pop(done <-chan struct{}) (v T, ok bool) {
	for {
		if v, ok := q.tryPop(); ok {
			return v, true
		}
		select {
		case <-q.ready:
		case <-done:
			return v, false
		}
	}
}

// Len returns the number of values waiting.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

func (q *Queue[T]) tryPop() (v T, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return v, false
	}
	v = q.items[q.head]
	var zero T
	q.items[q.head] = zero // let the garbage collector have what the value points to
	q.head++
	if q.head == len(q.items) {
		// Empty: reuse the backing array from the start instead of growing it forever.
		q.items = q.items[:0]
		q.head = 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		// Mostly consumed: slide the live tail down so a queue that never empties stays bounded by its length.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
	return v, true
}
