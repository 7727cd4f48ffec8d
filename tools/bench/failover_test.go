package bench

import (
	"testing"
	"time"

	"github.com/matryer/is"
)

// Produce resumes with the first acknowledgement of a call made after the kill: a call made
// before it that the dead leader (or a retry) answers late does not end the gap.
func TestAFailoverGapEndsWithACallMadeAfterTheKill(t *testing.T) {
	is := is.New(t)
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var a acks
	a.ack(at(0), at(10))
	last, resumed := a.markKill(at(20))
	is.Equal(last, at(10))
	a.ack(at(5), at(400)) // sent before the kill
	select {
	case <-resumed:
		t.Fatal("a call made before the kill ended the gap")
	default:
	}
	a.ack(at(410), at(900))
	<-resumed
	a.ack(at(905), at(910)) // later ones do not move it
	is.Equal(a.first(), at(900))
}

func TestFailoverStatsSummarizeTheResumedKills(t *testing.T) {
	is := is.New(t)
	s := failoverStats([]Kill{
		{GapMillis: 900, Resumed: true}, {GapMillis: 1500, Resumed: true}, {GapMillis: 700, Resumed: true}, {Resumed: false},
	})
	is.Equal(s.MaxGapMillis, 1500.0)
	is.Equal(s.GapP50Millis, 900.0)
	is.Equal(len(s.Kills), 4)
}
