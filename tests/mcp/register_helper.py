"""Another process: an MCP server announcing itself through the Python binding.

Usage: register_helper.py REGISTRY_PATH ID PORT
Registers ID (lease liveness: listed while this process lives), prints "ready", then waits
for its standard input to close and unregisters. Killed instead, its lease goes with it.
"""

import sys

import peer_registry


def main() -> None:
    path, server_id, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with peer_registry.registered(
        path=path,
        id=server_id,
        name="Helper " + server_id,
        url=f"http://127.0.0.1:{port}/mcp",
        tools=["helperTool"],
        resources=[f"resource://{server_id}/"],
        prompts=["helper-prompt"],
    ):
        print("ready", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
