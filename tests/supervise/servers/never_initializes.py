"""A misbehaving MCP server: reads its input and never answers anything (not even initialize)."""
import sys

print("never_initializes: reading and ignoring stdin", file=sys.stderr, flush=True)
for _line in sys.stdin:
    pass
