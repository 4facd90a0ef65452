package pg

import "errors"

// Sentinel errors; wrap them with context and test them with errors.Is.
var (
	// ErrConfig: the configuration is invalid.
	ErrConfig = errors.New("invalid configuration")
	// ErrBinaryMissing: a PostgreSQL program is missing or not version 15.
	ErrBinaryMissing = errors.New("postgresql program missing")
	// ErrNotPostgres: the data directory exists but is not PostgreSQL's.
	ErrNotPostgres = errors.New("not a postgresql data directory")
	// ErrPortInUse: another process listens on the configured address and port.
	ErrPortInUse = errors.New("port in use")
	// ErrNotRunning: the operation needs a running server.
	ErrNotRunning = errors.New("postgresql is not running")
	// ErrNotInitialized: there is no data directory yet.
	ErrNotInitialized = errors.New("postgresql data directory not initialised")
	// ErrIsPrimary: the operation needs a standby but the server is a primary.
	ErrIsPrimary = errors.New("postgresql is a primary")
	// ErrUnreachable: the database OS user cannot reach the base directory.
	ErrUnreachable = errors.New("directory not reachable by the database OS user")
)
