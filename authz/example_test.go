package authz_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/dislog/dislog/authz"
)

func ExampleAuthorizer() {
	dir, err := os.MkdirTemp("", "authz-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	policy := filepath.Join(dir, "policy.csv")
	rules := "p, alice, orders.*, produce\np, role:server, *, replicate\n"
	if err := os.WriteFile(policy, []byte(rules), 0o600); err != nil {
		log.Fatal(err)
	}

	acl, err := authz.New(authz.Options{PolicyFile: policy})
	if err != nil {
		log.Fatal(err)
	}
	defer acl.Close()

	// A server gets the subject from the connection with SubjectFromState.
	alice := authz.Subject{Name: "alice", Role: authz.RoleClient}
	fmt.Println(acl.Authorize(alice, "orders.eu", authz.ActionProduce))
	err = acl.Authorize(alice, "orders.eu", authz.ActionConsume)
	fmt.Println(errors.Is(err, authz.ErrPermissionDenied), err)
	// Output:
	// <nil>
	// true authz: permission denied: client "alice" may not consume "orders.eu"
}
