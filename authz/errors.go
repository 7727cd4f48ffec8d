package authz

import "errors"

// ErrPermissionDenied is returned by [Authorizer.Authorize] when the policy
// does not allow the call. Everything not explicitly allowed is denied.
var ErrPermissionDenied = errors.New("authz: permission denied")

// ErrInvalidPolicy is returned when a policy file cannot be parsed or holds a
// rule that is not well formed. The policy in force before stays in force.
var ErrInvalidPolicy = errors.New("authz: invalid policy")

// ErrInvalidModel is returned when a Casbin model file cannot be parsed or
// does not have the request and policy shape authz feeds it.
var ErrInvalidModel = errors.New("authz: invalid model")

// ErrNoCertificate is returned by [SubjectFromState] when the connection has
// no verified peer certificate.
var ErrNoCertificate = errors.New("authz: no verified certificate")

// ErrInvalidSubject is returned by [SubjectFromState] when the verified
// certificate does not name a usable subject: an empty common name, or one
// that starts with the reserved prefix "role:".
var ErrInvalidSubject = errors.New("authz: invalid subject")

// ErrWrongRole is returned when a certificate is used in a role its extended
// key usage does not allow, such as a client certificate configured for a
// server.
var ErrWrongRole = errors.New("authz: certificate has the wrong role")
