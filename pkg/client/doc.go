// Package client is the Go SDK of Cairn's native HTTP API (docs/api.md).
//
// It is what applications embed, so it depends on nothing of Cairn's
// internals: the JSON shapes (Instance, Service, Event, Snapshot, ...) are
// mirrored here.
//
// Three layers:
//
//   - Client: one method per API call (Register, Renew, Instances, Watch,
//     ApplyConfig, ...).
//     Answers other than 2xx become *APIError; IsNotFound tells 404s apart.
//   - Registration (KeepRegistered): keeps one instance registered: renews
//     its lease, registers it again when the server forgot it (restart,
//     eviction), retries with backoff and deregisters when stopped.
//   - Cache (NewCache): follows the watch stream of a namespace (or one
//     service) and answers discovery queries from memory.
//
// Thread-safety: a Client, a Registration and a Cache may be used from any
// number of goroutines. A Stream (Watch) is read by one goroutine at a time;
// its Close may be called from any goroutine. Values returned by the client
// (instances, services) are the caller's own: nothing else holds them.
package client
