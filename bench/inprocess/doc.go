// Package inprocess holds Go benchmarks that drive Cairn's registry and API
// handler in process, without the network, to profile the costs the HTTP
// benchmark (cmd/cairnbench) sees from outside:
//
//	cd bench && go test ./inprocess -run '^$' -bench . -benchtime 20x
//	cd bench && go test ./inprocess -run '^$' -bench RenewHandler -cpuprofile /tmp/renew.prof
//	go tool pprof -top /tmp/renew.prof
//
// They import the main module's internal packages (allowed: this module's
// path is under github.com/cairnhq/cairn) through the replace directive in
// go.mod, so they follow the working tree. run.sh does not run them.
package inprocess
