package topics

import (
	"errors"
	"strings"
	"testing"
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
