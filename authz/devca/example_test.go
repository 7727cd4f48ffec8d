package devca_test

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/dislog/dislog/authz"
	"github.com/dislog/dislog/authz/devca"
)

// A CA issues a server certificate for the addresses a node is dialed by and a client certificate
// for the subject the ACL names; the caller writes the PEM where authz.TLSOptions point.
func Example() {
	ca, err := devca.New(devca.CAName)
	if err != nil {
		panic(err)
	}
	serverPEM, _, err := ca.Issue(devca.Request{CommonName: "node1", Role: authz.RoleServer, Hosts: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		panic(err)
	}
	clientPEM, _, err := ca.Issue(devca.Request{CommonName: "dev", Role: authz.RoleClient})
	if err != nil {
		panic(err)
	}
	for _, p := range [][]byte{serverPEM, clientPEM} {
		block, _ := pem.Decode(p)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			panic(err)
		}
		fmt.Println(cert.Subject.CommonName, cert.Subject.OrganizationalUnit, cert.DNSNames, cert.IPAddresses)
	}
	// Output:
	// node1 [server] [localhost] [127.0.0.1]
	// dev [client] [] []
}
