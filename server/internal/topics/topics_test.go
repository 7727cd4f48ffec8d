package topics

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"orders", true},
		{"orders.eu-1_x", true},
		{"A.B", true},
		{"..x", true},
		{strings.Repeat("a", MaxNameLength), true},
		{"", false},
		{".", false},
		{"..", false},
		{strings.Repeat("a", MaxNameLength+1), false},
		{"a/b", false},
		{"a b", false},
		{"orders*", false},
		{"é", false},
		{".creating+x", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateName(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateName(%q) = %v, want ok %v", tc.name, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v does not wrap ErrInvalidName", err)
			}
		})
	}
}

func TestTopicsSurviveReopenAndCrashLeftoversAreSwept(t *testing.T) {
	is := is.New(t)
	dir := t.TempDir()
	r, err := Open(dir, Options{})
	is.NoErr(err)
	tp, err := r.Create("kept", Config{RetentionBytes: 100, RetentionAge: time.Hour})
	is.NoErr(err)
	_, err = tp.Log.Append([]byte("x"))
	is.NoErr(err)
	_, err = r.Create("gone", Config{})
	is.NoErr(err)
	is.NoErr(r.Delete("gone"))
	is.True(errors.Is(r.Delete("gone"), ErrNotFound))
	_, err = r.Create("kept", Config{})
	is.True(errors.Is(err, ErrExists))
	_, err = r.Create("neg", Config{RetentionBytes: -1})
	is.True(errors.Is(err, ErrInvalidConfig))
	is.NoErr(r.Close())

	// What a crash in the middle of a create or a delete leaves behind.
	is.NoErr(os.MkdirAll(filepath.Join(dir, creatingPrefix+"half"), 0o755))
	is.NoErr(os.MkdirAll(filepath.Join(dir, deletingPrefix+"old+1"), 0o755))

	r, err = Open(dir, Options{})
	is.NoErr(err)
	defer r.Close()
	list := r.List()
	is.Equal(len(list), 1)
	is.Equal(list[0].Name, "kept")
	is.Equal(list[0].Config, Config{RetentionBytes: 100, RetentionAge: time.Hour})
	is.Equal(list[0].Log.NextOffset(), uint64(1))
	entries, err := os.ReadDir(dir)
	is.NoErr(err)
	is.Equal(len(entries), 1) // the leftovers are gone
}

func TestADeletedTopicSaysSo(t *testing.T) {
	is := is.New(t)
	r, err := Open(t.TempDir(), Options{})
	is.NoErr(err)
	defer r.Close()
	tp, err := r.Create("t", Config{})
	is.NoErr(err)
	is.True(!tp.Deleted())
	is.NoErr(r.Delete("t"))
	is.True(tp.Deleted())
	_, err = tp.Log.Append([]byte("late"))
	is.True(err != nil) // the log is closed
	_, err = r.Get("t")
	is.True(errors.Is(err, ErrNotFound))
}

// The error names the offending character as the caller typed it, and where, in characters.
func TestAnInvalidNameIsExplainedByCharacter(t *testing.T) {
	for _, tc := range []struct{ name, says string }{
		{"caf\u00e9s", `"cafés" has 'é' at character 4`},
		{"a/b", `"a/b" has '/' at character 2`},
		{"\u65e5\u672c", `"日本" has '日' at character 1`},
	} {
		err := ValidateName(tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ValidateName(%q) = %v; want an error that says %s", tc.name, err, tc.says)
		}
	}
}
