package topics

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dislog/dislog/storelog"
	"github.com/dislog/dislog/storelog/faultfs"
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

// A power loss at any step of Create leaves no topic, or the topic whole with its configuration;
// once Create returns, the topic survives. The crash fails the n-th file operation and every one
// after it, then throws away what was not durable (storelog/faultfs).
func TestCreateSurvivesPowerLossAtEveryStep(t *testing.T) {
	conf := Config{RetentionBytes: 1 << 20, RetentionAge: time.Hour}
	for n := 0; ; n++ {
		is := is.New(t)
		dir := t.TempDir()
		fs := faultfs.New()
		r, err := Open(dir, Options{Log: storelog.Options{FS: fs}})
		is.NoErr(err)
		ops := 0
		fs.SetFault(func(faultfs.Op, string) error {
			if ops++; ops > n {
				return faultfs.ErrInjected
			}
			return nil
		})
		_, cerr := r.Create("orders", conf)
		fs.SetFault(nil)
		if cerr != nil && !errors.Is(cerr, faultfs.ErrInjected) {
			t.Fatalf("step %d: %v", n, cerr)
		}
		is.NoErr(fs.Crash(rand.New(rand.NewPCG(uint64(n), 13))))
		r.Close() // its logs' handles fail after the crash

		r, err = Open(dir, Options{})
		if err != nil {
			t.Fatalf("step %d: reopen after a crash: %v", n, err)
		}
		list := r.List()
		switch {
		case cerr == nil && len(list) != 1:
			t.Fatalf("step %d: Create returned, but after a crash the topics are %v", n, list)
		case len(list) > 1 || len(list) == 1 && (list[0].Name != "orders" || list[0].Config != conf):
			t.Fatalf("step %d: after a crash the topics are %+v", n, list[0])
		}
		is.NoErr(r.Close())
		if cerr == nil {
			if n < 4 {
				t.Fatalf("Create succeeded after only %d file operations", n)
			}
			return
		}
	}
}
