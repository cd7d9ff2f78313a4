// Command server is an MCP server over streamable HTTP that announces itself in the peer
// registry.
//
// It speaks enough of MCP (2024-11-05 to 2025-11-25) for the official SDK clients: POST
// JSON-RPC on /mcp — initialize (version negotiation, an Mcp-Session-Id), notifications/
// initialized, ping, tools/list, tools/call — answered as application/json; DELETE ends a
// session; GET (a server-to-client SSE stream) is not offered: 405. It listens on 127.0.0.1 on
// a port the kernel picks, registers that port only once it is listening (so nobody discovers
// a server that is not there yet) with the tool list taken from its own tool table, and
// unregisters on SIGINT or SIGTERM. If it dies any other way, the library's lease makes the
// entry disappear anyway.
//
//	go run ./server -id my-server      # registry: $PEER_REGISTRY_PATH, else ~/.peer-plan/servers.json
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/peer-registry/peer-registry/bindings/go/peerregistry"
)

// protocolVersions, newest first: an initialize asking for one of these gets it, anything else
// gets the first.
var protocolVersions = []string{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"}

const (
	maxBody     = 1 << 20
	maxSessions = 1000
)

type tool struct {
	Description string         `json:"description"`
	InputSchema map[string]any `json:"inputSchema"`
	call        func(args map[string]any) (string, error)
}

var tools = map[string]tool{
	"echo": {
		Description: `Returns its "text" argument.`,
		InputSchema: map[string]any{"type": "object", "properties": map[string]any{"text": map[string]any{"type": "string"}},
			"required": []string{"text"}},
		call: func(args map[string]any) (string, error) {
			text, ok := args["text"].(string)
			if !ok {
				return "", errors.New(`"text" must be a string`)
			}
			return text, nil
		},
	},
	"add": {
		Description: `Adds the numbers "a" and "b".`,
		InputSchema: map[string]any{"type": "object", "properties": map[string]any{"a": map[string]any{"type": "number"},
			"b": map[string]any{"type": "number"}}, "required": []string{"a", "b"}},
		call: func(args map[string]any) (string, error) {
			a, okA := args["a"].(float64)
			b, okB := args["b"].(float64)
			if !okA || !okB {
				return "", errors.New(`"a" and "b" must be numbers`)
			}
			return strconv.FormatFloat(a+b, 'f', -1, 64), nil
		},
	},
}

func toolNames() []string {
	names := make([]string, 0, len(tools))
	for name := range tools {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func main() {
	id := flag.String("id", "example-go-server", "registry id of this server")
	registryPath := flag.String("registry", "", "registry file (default: $PEER_REGISTRY_PATH, else ~/.peer-plan/servers.json)")
	flag.Parse()
	if flag.NArg() == 1 { // also `server <id>`, as examples/node/server.js takes it
		*id = flag.Arg(0)
	}
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
	endpoint := fmt.Sprintf("http://127.0.0.1:%d/mcp", port)

	mux := http.NewServeMux()
	mux.Handle("/mcp", &mcpHandler{sessions: map[string]*session{}})
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
		ID:              id,
		Name:            "Example Go server",
		URL:             endpoint,
		Port:            port,
		Transport:       peerregistry.TransportHTTP,
		RequiresSession: true,
		Capabilities:    peerregistry.Capabilities{Tools: toolNames()},
	}); err != nil {
		return err
	}
	if err := reg.SetHealth(ctx, id, peerregistry.StatusHealthy, "serving"); err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", endpoint)

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

type session struct {
	protocolVersion string
	initialized     bool
}

type mcpHandler struct {
	mu       sync.Mutex
	sessions map[string]*session
}

type message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

// httpError is a transport-level refusal: an HTTP status with a JSON-RPC error body.
type httpError struct {
	status  int
	code    int
	message string
}

func (h *mcpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := checkOrigin(r); err != nil {
		fail(w, err)
		return
	}
	switch r.Method {
	case http.MethodPost:
		h.post(w, r)
	case http.MethodDelete:
		sessionID, _, err := h.sessionOf(r)
		if err != nil {
			fail(w, err)
			return
		}
		h.mu.Lock()
		delete(h.sessions, sessionID)
		h.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	default:
		// GET would open a server-to-client SSE stream; this server sends nothing unasked.
		w.Header().Set("Allow", "POST, DELETE")
		fail(w, &httpError{http.StatusMethodNotAllowed, -32000, "method " + r.Method + " not allowed"})
	}
}

func (h *mcpHandler) post(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		fail(w, &httpError{http.StatusRequestEntityTooLarge, -32000, "request body too large"})
		return
	}
	var msg message
	if err := json.Unmarshal(body, &msg); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || len(bytes.TrimSpace(body)) == 0 {
			fail(w, &httpError{http.StatusBadRequest, -32700, "parse error"})
		} else { // valid JSON, not one message object (a batch, a string, ...)
			fail(w, &httpError{http.StatusBadRequest, -32600, "invalid request: one JSON-RPC 2.0 message per POST"})
		}
		return
	}
	if msg.JSONRPC != "2.0" {
		fail(w, &httpError{http.StatusBadRequest, -32600, "invalid request: one JSON-RPC 2.0 message per POST"})
		return
	}
	isRequest := msg.Method != "" && len(msg.ID) > 0 && string(msg.ID) != "null"
	if isRequest && msg.Method == "initialize" {
		h.initialize(w, msg)
		return
	}
	_, s, err := h.sessionOf(r)
	if err != nil {
		fail(w, err)
		return
	}
	if !isRequest { // a notification or a response: accepted, nothing to answer
		if msg.Method == "notifications/initialized" {
			h.mu.Lock()
			s.initialized = true
			h.mu.Unlock()
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	reply(w, http.StatusOK, handleRequest(msg), "")
}

func (h *mcpHandler) initialize(w http.ResponseWriter, msg message) {
	var params struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	_ = json.Unmarshal(msg.Params, &params) // a missing or odd version gets the newest
	version := protocolVersions[0]
	for _, v := range protocolVersions {
		if v == params.ProtocolVersion {
			version = v
		}
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		fail(w, &httpError{http.StatusInternalServerError, -32603, "no randomness for a session id"})
		return
	}
	sessionID := hex.EncodeToString(raw[:])
	h.mu.Lock()
	if len(h.sessions) >= maxSessions {
		h.mu.Unlock()
		fail(w, &httpError{http.StatusServiceUnavailable, -32000, "too many sessions"})
		return
	}
	h.sessions[sessionID] = &session{protocolVersion: version}
	h.mu.Unlock()
	reply(w, http.StatusOK, response{ID: msg.ID, Result: map[string]any{
		"protocolVersion": version,
		"capabilities":    map[string]any{"tools": map[string]any{"listChanged": false}},
		"serverInfo":      map[string]any{"name": "peer-registry-go-example", "version": "0.1.0"},
	}}, sessionID)
}

// sessionOf finds the session of a (non-initialize) message, checked as the transport spec says.
func (h *mcpHandler) sessionOf(r *http.Request) (string, *session, error) {
	sessionID := r.Header.Get("Mcp-Session-Id")
	if sessionID == "" {
		return "", nil, &httpError{http.StatusBadRequest, -32000, "Bad Request: Mcp-Session-Id header is required"}
	}
	h.mu.Lock()
	s := h.sessions[sessionID]
	h.mu.Unlock()
	if s == nil {
		return "", nil, &httpError{http.StatusNotFound, -32001, "Session not found"}
	}
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" && v != s.protocolVersion {
		return "", nil, &httpError{http.StatusBadRequest, -32000, "Bad Request: unsupported MCP-Protocol-Version " + v +
			" (this session negotiated " + s.protocolVersion + ")"}
	}
	return sessionID, s, nil
}

func handleRequest(msg message) response {
	resp := response{ID: msg.ID}
	switch msg.Method {
	case "ping":
		resp.Result = struct{}{}
	case "tools/list":
		list := make([]map[string]any, 0, len(tools))
		for _, name := range toolNames() {
			t := tools[name]
			list = append(list, map[string]any{"name": name, "description": t.Description, "inputSchema": t.InputSchema})
		}
		resp.Result = map[string]any{"tools": list}
	case "tools/call":
		var params struct {
			Name      string         `json:"name"`
			Arguments map[string]any `json:"arguments"`
		}
		if err := json.Unmarshal(msg.Params, &params); err != nil {
			resp.Error = &rpcError{Code: -32602, Message: "invalid params: " + err.Error()}
			break
		}
		t, ok := tools[params.Name]
		if !ok {
			resp.Error = &rpcError{Code: -32602, Message: "unknown tool: " + params.Name}
			break
		}
		text, err := t.call(params.Arguments)
		isError := err != nil
		if isError { // a tool's own failure is a result the model can read, not a protocol error
			text = err.Error()
		}
		resp.Result = map[string]any{"content": []map[string]any{{"type": "text", "text": text}}, "isError": isError}
	default:
		resp.Error = &rpcError{Code: -32601, Message: "method not found: " + msg.Method}
	}
	return resp
}

// checkOrigin rejects a browser page on another origin (DNS rebinding): only loopback origins
// may call.
func checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	if u, err := url.Parse(origin); err == nil {
		switch u.Hostname() {
		case "127.0.0.1", "localhost", "::1":
			return nil
		}
	}
	return &httpError{http.StatusForbidden, -32000, "Forbidden: origin " + origin}
}

func fail(w http.ResponseWriter, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{http.StatusInternalServerError, -32603, err.Error()}
	}
	reply(w, he.status, response{ID: json.RawMessage("null"), Error: &rpcError{Code: he.code, Message: he.message}}, "")
}

func (e *httpError) Error() string { return e.message }

func reply(w http.ResponseWriter, status int, resp response, sessionID string) {
	resp.JSONRPC = "2.0"
	w.Header().Set("Content-Type", "application/json")
	if sessionID != "" {
		w.Header().Set("Mcp-Session-Id", sessionID)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}
