// Command crowdworker is the Go worker of the cross-language crowd test (tests/crowd), using
// the Go binding. The protocol every worker follows is described in tests/crowd/driver.py.
//
//	crowdworker <registry> <name> <iterations>
//
// Lines go to os.Stdout, which is unbuffered in Go: one write(2) per line, so a line printed
// is in the pipe before the next call starts and a SIGKILL loses nothing printed.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

const metadataText = "h\u00e9llo \u2713 \"quoted\" \\ </tag>"

var name string

func emit(line string) {
	if _, err := os.Stdout.WriteString(line + "\n"); err != nil {
		fail("stdout: %v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "worker %s: %s\n", name, fmt.Sprintf(format, args...))
	os.Exit(1)
}

func check(ok bool, format string, args ...any) {
	if !ok {
		fail(format, args...)
	}
}

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func entryFor(langIndex int, lang string, w, i int) peerregistry.Entry {
	id := fmt.Sprintf("%s-%d", name, i)
	return peerregistry.Entry{
		ID:   id,
		Name: fmt.Sprintf("crowd %s #%d", name, i),
		URL:  fmt.Sprintf("http://127.0.0.1:%d/mcp", 10000+langIndex*10000+w*1000+i),
		Capabilities: peerregistry.Capabilities{
			Tools:     []string{"tool-" + id, "shared-" + lang},
			Resources: []string{"resource://" + id + "/"},
			Prompts:   []string{"prompt-" + name},
		},
		Metadata: map[string]any{
			"lang":   lang,
			"worker": name,
			"i":      i,
			"text":   metadataText,
			"nested": map[string]any{"list": []any{1, 2.5, -3, true, nil}, "empty": map[string]any{}},
		},
	}
}

func errorLine(id string, err error) string {
	var e *peerregistry.Error
	if !errors.As(err, &e) {
		fail("%s: %v", id, err)
	}
	return fmt.Sprintf("ERR %s %d %s", id, int(e.Code), e.Message)
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: crowdworker <registry> <name> <iterations>")
		os.Exit(2)
	}
	path, iterations := os.Args[1], os.Args[3]
	name = os.Args[2]
	n, err := strconv.Atoi(iterations)
	must(err, "iterations")
	dash := strings.LastIndex(name, "-")
	lang := name[:dash]
	w, err := strconv.Atoi(name[dash+1:])
	must(err, "worker number")
	langIndex := map[string]int{"py": 0, "node": 1, "go": 2}[lang]
	ctx := context.Background()
	pid := os.Getpid()
	counts := map[string]int{}

	reg, err := peerregistry.Open(path)
	must(err, "open")
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<16), 1<<20)
	emit("READY")
	check(in.Scan() && in.Text() == "GO", "expected GO")
	var kept, gone []string
	for i := 0; i < n; i++ {
		e := entryFor(langIndex, lang, w, i)
		id := e.ID
		stored, err := reg.Register(ctx, e)
		must(err, "register "+id)
		counts["register"]++
		check(stored.ID == id && stored.PID == pid && stored.URL == e.URL, "register %s returned %+v", id, stored)
		emit("ACK " + id)
		listed, err := reg.List(peerregistry.Filter{Tool: "tool-" + id})
		must(err, "list")
		counts["list"]++
		check(len(listed.Servers) == 1 && listed.Servers[0].ID == id, "list(tool=tool-%s) = %+v", id, listed.Servers)
		resolved, err := reg.ResolveTool("tool-" + id)
		must(err, "resolve tool-"+id)
		counts["resolve"]++
		check(resolved.ID == id, "resolve tool-%s = %s", id, resolved.ID)
		status := peerregistry.StatusDegraded
		if i%4 == 0 {
			status = peerregistry.StatusHealthy
		}
		must(reg.SetHealth(ctx, id, status, fmt.Sprintf("%s iteration %d", name, i)), "set health "+id)
		counts["health"]++
		if i%2 == 1 {
			must(reg.Unregister(ctx, id), "unregister "+id)
			counts["unregister"]++
			emit("UNREG " + id)
			gone = append(gone, id)
		} else {
			kept = append(kept, id)
		}
		if i%25 == 24 {
			all, err := reg.List(peerregistry.Filter{})
			must(err, "list")
			counts["list"]++
			ids := map[string]bool{}
			for _, s := range all.Servers {
				ids[s.ID] = true
			}
			for _, k := range kept {
				check(ids[k], "own entry %s missing from list", k)
			}
			for _, g := range gone {
				check(!ids[g], "unregistered entry %s listed", g)
			}
		}
	}
	summary, _ := json.Marshal(counts)
	emit("DONE " + string(summary))

	for in.Scan() {
		words := strings.SplitN(in.Text(), " ", 4)
		switch words[0] {
		case "GET":
			e, err := reg.Get(words[1])
			if err != nil {
				emit(errorLine(words[1], err))
				continue
			}
			out, err := json.Marshal(e)
			must(err, "marshal "+words[1])
			emit("GOT " + words[1] + " " + string(out))
		case "LIST":
			all, err := reg.List(peerregistry.Filter{})
			if err != nil {
				emit(errorLine("-", err))
				continue
			}
			ids := make([]string, 0, len(all.Servers))
			for _, s := range all.Servers {
				ids = append(ids, s.ID)
			}
			sort.Strings(ids)
			out, _ := json.Marshal(ids)
			emit("LISTED " + string(out))
		case "HEALTH":
			if err := reg.SetHealth(ctx, words[1], peerregistry.HealthStatus(words[2]), words[3]); err != nil {
				emit(errorLine(words[1], err))
				continue
			}
			emit("OK")
		default:
			fail("unknown command %q", in.Text())
		}
	}
	must(in.Err(), "stdin")
	must(reg.Close(), "close")
}
