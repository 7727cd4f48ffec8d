module github.com/dislog/dislog/storelog

go 1.26.8

require (
	github.com/matryer/is v1.4.1
	github.com/tysonmote/gommap v0.0.3
	golang.org/x/sys v0.42.0
)
