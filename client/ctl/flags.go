package ctl

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// oldTLSFlags are the names the TLS flags had before they took the server's (--tls-ca became
// --tls-ca-file, as dislog names it). They still work for one release, with a notice.
var oldTLSFlags = map[string]string{"tls-ca": "tls-ca-file", "tls-cert": "tls-cert-file", "tls-key": "tls-key-file"}

// AddOldTLSFlags defines the old names on f, hidden, setting the same variables as the new ones.
// WarnOldTLSFlags tells of their use. (pflag's MarkDeprecated would print its notice where cobra
// prints help, on stdout, into the records or JSON a script reads.)
func AddOldTLSFlags(f *pflag.FlagSet, ca, cert, key *string) {
	for old, p := range map[string]*string{"tls-ca": ca, "tls-cert": cert, "tls-key": key} {
		f.StringVar(p, old, "", "")
		_ = f.MarkHidden(old)
	}
}

// WarnOldTLSFlags writes a notice to w for each old name given on f.
func WarnOldTLSFlags(w io.Writer, program string, f *pflag.FlagSet) {
	for _, old := range []string{"tls-ca", "tls-cert", "tls-key"} {
		if fl := f.Lookup(old); fl != nil && fl.Changed {
			fmt.Fprintf(w, "%s: --%s is deprecated: use --%s (--%s goes in the next release)\n", program, old, oldTLSFlags[old], old)
		}
	}
}

// Given reports whether the flag name, or its old name, was given on the command line.
func Given(f *pflag.FlagSet, name string) bool {
	if fl := f.Lookup(name); fl != nil && fl.Changed {
		return true
	}
	old, _ := strings.CutSuffix(name, "-file")
	if fl := f.Lookup(old); old != name && fl != nil && fl.Changed {
		return oldTLSFlags[old] == name
	}
	return false
}

// PlainBools makes --help print the boolean flags of cmd and its subcommands as "--progress",
// not pflag's "--progress[=true|false]": a flag whose value does not say it is a bool flag is
// printed bare, and NoOptDefVal still lets it be given without a value.
func PlainBools(cmd *cobra.Command) {
	cmd.InitDefaultHelpFlag()
	for _, fs := range []*pflag.FlagSet{cmd.Flags(), cmd.PersistentFlags()} {
		fs.VisitAll(func(f *pflag.Flag) {
			if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); isBool && f.Value.Type() == "bool" {
				f.Value = plainBool{f.Value}
			}
		})
	}
	for _, sub := range cmd.Commands() {
		PlainBools(sub)
	}
}

// plainBool hides IsBoolFlag: embedding the interface promotes only String, Set and Type.
type plainBool struct{ pflag.Value }
