package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// plainBools makes --help print the boolean flags of cmd and its subcommands as "--progress",
// not pflag's "--progress[=true|false]": a flag whose value does not say it is a bool flag is
// printed bare, and NoOptDefVal still lets it be given without a value.
func plainBools(cmd *cobra.Command) {
	cmd.InitDefaultHelpFlag()
	for _, fs := range []*pflag.FlagSet{cmd.Flags(), cmd.PersistentFlags()} {
		fs.VisitAll(func(f *pflag.Flag) {
			if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); isBool && f.Value.Type() == "bool" {
				f.Value = plainBool{f.Value}
			}
		})
	}
	for _, sub := range cmd.Commands() {
		plainBools(sub)
	}
}

// plainBool hides IsBoolFlag: embedding the interface promotes only String, Set and Type.
type plainBool struct{ pflag.Value }
