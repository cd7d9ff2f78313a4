// The registry as an MCP server: being written (issue 8).
