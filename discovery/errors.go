package discovery

import "errors"

// ErrInvalidConfig is returned by New for a Config it cannot run with; the wrapped message names the
// field.
var ErrInvalidConfig = errors.New("discovery: invalid config")

// ErrInvalidTags is returned by SetTags, and by New wrapped in ErrInvalidConfig, for tags that use the
// reserved RPCAddrTag key or do not fit in 512 encoded bytes.
var ErrInvalidTags = errors.New("discovery: invalid tags")

// ErrClosed is returned by calls that need the network after Shutdown or Close.
var ErrClosed = errors.New("discovery: membership closed")
