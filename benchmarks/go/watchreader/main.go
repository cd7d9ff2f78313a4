// Command watchreader is a watch_writer reader in Go: the binding's channel of events.
// Usage: watchreader <path>. Prints "ready", then "<seq> <CLOCK_MONOTONIC ns>" per event,
// stamped as the event is received from the channel.
package main

/*
#include <time.h>
static long long mono_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}
*/
import "C"

import (
	"bufio"
	"context"
	"fmt"
	"os"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

func main() {
	reg, err := peerregistry.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w, err := reg.Watch(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "ready")
	out.Flush()
	for ev := range w.Events() {
		t := int64(C.mono_ns())
		for _, e := range append(ev.Changed, ev.Added...) {
			if e.ID == "watched" {
				fmt.Fprintf(out, "%v %d\n", e.Metadata["seq"], t)
				out.Flush()
			}
		}
	}
	fmt.Fprintln(os.Stderr, "watch stopped:", w.Err())
	os.Exit(1)
}
