# Sourced by the test runners: the Python packages a suite needs, installed when missing (with
# the exact command printed first), never silently skipped.
#   python_deps mcp pytest uvicorn
# "mcp" means the official MCP Python SDK at the 2.x API the tests use (snake_case result
# fields, ClientSession.initialize, MCPServer); any other name is a module to import.
PEER_REGISTRY_MCP_REQUIREMENT='mcp>=2.3,<3'

python_deps() {
    local who="${0##*/}" name
    for name in "$@"; do
        if [ "$name" = mcp ]; then
            if ! python3 -c 'import importlib.metadata as m, sys; sys.exit(m.version("mcp").split(".")[0] != "2")' 2>/dev/null; then
                echo "$who: installing the MCP Python SDK: python3 -m pip install '$PEER_REGISTRY_MCP_REQUIREMENT'" >&2
                python3 -m pip install --quiet --disable-pip-version-check "$PEER_REGISTRY_MCP_REQUIREMENT"
            fi
        elif ! python3 -c "import $name" 2>/dev/null; then
            echo "$who: installing $name: python3 -m pip install $name" >&2
            python3 -m pip install --quiet --disable-pip-version-check "$name"
        fi
    done
}
