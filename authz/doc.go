// Package authz decides who a caller is and what it may do.
//
// Identity comes from mutual TLS. [ServerTLSConfig], [ClientTLSConfig] and
// [PeerTLSConfig] build TLS 1.3 configurations from PEM files on disk that
// pick up rotated certificates on the next handshake, so certificates rotate
// without a restart and without dropping live connections. A server reads
// the caller's identity from the verified client certificate with
// [SubjectFromState]: the name is the certificate's common name, and the role
// ([RoleServer] or [RoleClient]) is read from its extended key usage (see
// [Role]).
//
// Permission comes from a Casbin ACL. An [Authorizer] loads a policy file of
// rules "subject may do action on object", where an object is a topic name or
// a pattern with a trailing wildcard ("orders.*", "*"), and answers
// [Authorizer.Authorize] with nil or an error wrapping [ErrPermissionDenied].
// Anything not allowed is denied. The policy is reloaded on request and when
// its file changes; a reload builds the new policy off to the side and swaps
// it in whole, so a bad file leaves the old policy in force and no request
// ever sees half of one.
//
// A typical server wires the two together:
//
//	tlsConf, err := authz.ServerTLSConfig(authz.TLSOptions{CAFile: "ca.pem", CertFile: "node1.pem", KeyFile: "node1-key.pem"})
//	acl, err := authz.New(authz.Options{PolicyFile: "policy.csv"})
//	defer acl.Close()
//	// per call, with the connection's tls.ConnectionState:
//	sub, err := authz.SubjectFromState(state)
//	err = acl.Authorize(sub, "orders.eu", authz.ActionProduce)
package authz
