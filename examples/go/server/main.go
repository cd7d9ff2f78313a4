// Command server is a tiny MCP-style HTTP server that announces itself in the peer registry.
//
// It listens on 127.0.0.1 on a port the kernel picks, registers that port only once it is
// listening (so nobody discovers a server that is not there yet), answers JSON-RPC "ping" on
// POST /mcp, and unregisters on SIGINT or SIGTERM. If it dies any other way, the library's
// lease makes the entry disappear anyway.
//
//	go run ./server -id my-server      # registry: $PEER_REGISTRY_PATH, else ~/.peer-plan/servers.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

var tools = []string{"echo", "time"}

func main() {
	id := flag.String("id", "example-go-server", "registry id of this server")
	registryPath := flag.String("registry", "", "registry file (default: $PEER_REGISTRY_PATH, else ~/.peer-plan/servers.json)")
	flag.Parse()
	if err := run(*id, *registryPath); err != nil {
		log.Fatal(err)
	}
}

func run(id, registryPath string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := listener.Addr().(*net.TCPAddr).Port
	url := fmt.Sprintf("http://127.0.0.1:%d/mcp", port)

	mux := http.NewServeMux()
	mux.HandleFunc("/mcp", handleMCP)
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()

	reg, err := peerregistry.Open(registryPath)
	if err != nil {
		return err
	}
	// Close also unregisters; deferring it keeps reg reachable for as long as we serve.
	defer reg.Close()
	if _, err := reg.Register(ctx, peerregistry.Entry{
		ID:           id,
		Name:         "Example Go server",
		URL:          url,
		Port:         port,
		Transport:    peerregistry.TransportHTTP,
		Capabilities: peerregistry.Capabilities{Tools: tools},
	}); err != nil {
		return err
	}
	if err := reg.SetHealth(ctx, id, peerregistry.StatusHealthy, "serving"); err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", url)

	select {
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	// Unregister first, so nobody is sent here while we shut down.
	if err := reg.Unregister(context.Background(), id); err != nil {
		log.Printf("unregister: %v", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type rpcRequest struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

func handleMCP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST JSON-RPC here", http.StatusMethodNotAllowed)
		return
	}
	var req rpcRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		reply(w, rpcResponse{ID: json.RawMessage("null"), Error: &rpcError{Code: -32700, Message: "parse error"}})
		return
	}
	if req.ID == nil { // a notification: no response
		w.WriteHeader(http.StatusAccepted)
		return
	}
	resp := rpcResponse{ID: req.ID}
	switch req.Method {
	case "ping":
		resp.Result = struct{}{}
	case "tools/list":
		list := make([]map[string]string, len(tools))
		for i, name := range tools {
			list[i] = map[string]string{"name": name}
		}
		resp.Result = map[string]any{"tools": list}
	default:
		resp.Error = &rpcError{Code: -32601, Message: "method not found: " + req.Method}
	}
	reply(w, resp)
}

func reply(w http.ResponseWriter, resp rpcResponse) {
	resp.JSONRPC = "2.0"
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}
