// Command dislog-certs makes a certificate authority and issues the server,
// peer and client certificates of a Dislog cluster. It is a thin command line
// over package github.com/dislog/dislog/tools/certs, and reads and writes
// cfssl's own CSR and signing config files.
//
//	dislog-certs config --out pki              # cfssl files to edit, optional
//	dislog-certs ca --dir pki/ca [--csr pki/ca-csr.json]
//	dislog-certs issue --ca pki/ca --role server --cn node1 --hosts node1.example,10.0.0.1 --out pki/node1
//	dislog-certs issue --ca pki/ca --role client --cn alice --out pki/alice
//
// or, for a whole cluster at once and only what is missing (a container init step):
//
//	dislog-certs cluster --dir pki --servers dislog-1,dislog-2,dislog-3 --hosts localhost,127.0.0.1 --clients admin --policy
package main

import (
	"os"
)

func main() {
	if err := newRootCommand(os.Stdout).Execute(); err != nil {
		os.Exit(1)
	}
}
