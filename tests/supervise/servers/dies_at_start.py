"""A misbehaving MCP server: complains on stderr and exits 2 before answering anything."""
import sys

print("dies_at_start: missing API key FOO_API_KEY", file=sys.stderr, flush=True)
sys.exit(2)
