package certs

import "errors"

// ErrCAExists is returned by [NewCA] when the directory already holds a CA
// key: a CA is never overwritten, since every certificate it issued would
// die with it.
var ErrCAExists = errors.New("certs: a CA already exists there")

// ErrNoCA is returned by [OpenCA] when the directory holds no CA.
var ErrNoCA = errors.New("certs: no CA there")

// ErrRoleMismatch is returned by [CA.Issue] when the signing profile would
// give a certificate usages that do not match its role.
var ErrRoleMismatch = errors.New("certs: certificate usages do not match its role")

// ErrInvalidRequest is returned for a request that cannot make a usable
// certificate: an unknown role, no common name, or a server with no host.
var ErrInvalidRequest = errors.New("certs: invalid request")
