// Package certs is Dislog's certificate authority: it makes a CA and issues
// server, peer and client certificates with cfssl, and writes them as PEM
// files that authz's TLS configurations read. dislog-certs is a thin command
// line over it. (A server in dev mode makes its own CA with authz/devca, on
// crypto/x509 alone, so the server does not carry cfssl.)
//
// Requests and signing policy are cfssl's own types and JSON files
// (csr.CertificateRequest as in ca-csr.json, the "signing" section of
// ca-config.json), so a cfssl user's configs work unchanged. With no config,
// [DefaultCACSR], [DefaultCSR] and [DefaultSigningJSON] give ECDSA P-256 keys,
// a CA valid for five years and certificates valid for one.
//
// # Roles
//
// The role is written in the extended key usage, which TLS enforces and
// authz reads (see authz.Role): server and peer certificates get server auth
// and client auth, client certificates client auth only. The organizational
// unit says "server" or "client" for people reading a certificate. [CA.Issue]
// checks every certificate it signs against its role, so an edited signing
// profile can never turn a client certificate into a server one.
//
// # Files
//
// A CA directory holds ca.pem and ca-key.pem. Issuing writes <name>.pem,
// <name>-key.pem and a copy of ca.pem into the output directory, so each
// directory is everything one node or client needs. Keys are written 0600.
// Every file is written to a temporary name, synced and renamed into place,
// so a process reading it (authz reloads rotated certificates) never sees
// half of one.
//
// cfssl logs through its own package-level logger; a program that wants it
// quiet sets github.com/cloudflare/cfssl/log.Level.
package certs
