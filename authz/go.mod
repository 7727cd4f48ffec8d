module github.com/dislog/dislog/authz

go 1.26.8

require (
	github.com/casbin/casbin/v2 v2.135.0
	github.com/matryer/is v1.4.1
)

require (
	github.com/bmatcuk/doublestar/v4 v4.6.1 // indirect
	github.com/casbin/govaluate v1.3.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
)
