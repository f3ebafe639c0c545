// Package store holds what the CRI service persists about pod sandboxes and
// containers: a generic record store (immutable metadata plus a status
// changed only through Update) kept in memory and written through to bbolt,
// ID generation and unique-prefix lookup. The per-kind packages (sandbox,
// container) define the record types; names reserves CRI names.
package store
