package bench

import (
	"testing"

	"github.com/matryer/is"
)

func TestReadableNumber(t *testing.T) {
	is := is.New(t)
	for v, want := range map[float64]string{
		0: "0", 7: "7", 250: "250", 2500: "2,500", 250000: "250,000", 1234567.5: "1,234,567.5",
		0.08: "0.08", 0.00012: "0.00012", -12000: "-12,000",
	} {
		is.Equal(readableNumber(v), want)
	}
}
