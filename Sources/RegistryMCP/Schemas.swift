import MCP

/// JSON Schemas of what the tools take and return. The output schemas describe exactly the
/// `structuredContent` the tools send (clients such as the Python SDK validate it against them),
/// and allow fields a newer registry version adds.
enum Schemas {
    static let transports: [Value] = ["http", "sse", "ws", "stdio"]
    static let statuses: [Value] = ["HEALTHY", "DEGRADED", "DOWN", "UNKNOWN"]
    static let idPattern = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"

    static let stringList: Value = ["type": "array", "items": ["type": "string"]]

    static let health: Value = [
        "type": "object",
        "description": "Health as last reported or probed.",
        "properties": [
            "status": ["type": "string", "enum": .array(statuses)],
            "message": ["type": "string"],
            "lastCheck": ["type": "string", "description": "ISO 8601 UTC"],
            "consecutiveFailures": ["type": "integer", "minimum": 0],
        ],
        "required": ["status"],
    ]

    static let entry: Value = [
        "type": "object",
        "description": "One registered MCP server, as in the registry file (docs/FORMAT.md).",
        "properties": [
            "id": ["type": "string", "pattern": .string(idPattern)],
            "name": ["type": "string"],
            "url": ["type": "string"],
            "port": ["type": "integer"],
            "transport": ["type": "string", "enum": .array(transports)],
            "pid": ["type": "integer"],
            "pidStartTime": ["type": "integer"],
            "startedAt": ["type": "string"],
            "lastSeen": ["type": "string"],
            "liveness": ["type": "string", "enum": ["lease", "pid", "ttl", "none"]],
            "ttlSeconds": ["type": "integer"],
            "capabilities": [
                "type": "object",
                "properties": ["tools": stringList, "resources": stringList, "prompts": stringList],
            ],
            "health": health,
            "requiresSession": ["type": "boolean"],
            "metadata": ["description": "Anything the registrant published."],
            "scope": ["type": "string", "enum": ["local", "cluster"]],
            "node": ["type": "string", "description": "The machine a remote entry lives on (scope cluster only)."],
            "stale": ["type": "boolean", "description": "A remote entry this machine's cluster agent cannot vouch for (etcd lost, or the agent is not running)."],
        ],
        "required": ["id"],
    ]

    static let listing: Value = [
        "type": "object",
        "properties": [
            "generation": ["type": "integer", "description": "The registry file generation the list comes from."],
            "servers": ["type": "array", "items": entry],
        ],
        "required": ["generation", "servers"],
    ]

    static let resolution: Value = [
        "type": "object",
        "properties": [
            "kind": ["type": "string", "enum": ["tool", "resource", "prompt"]],
            "name": ["type": "string"],
            "server": entry,
        ],
        "required": ["kind", "name", "server"],
    ]

    static let healthReport: Value = [
        "type": "object",
        "properties": [
            "id": ["type": "string"],
            "probed": ["type": "boolean", "description": "Whether an active probe ran before this report."],
            "health": health,
        ],
        "required": ["id", "probed", "health"],
    ]

    static let scopeArgument: Value = [
        "type": "string", "enum": ["local", "cluster"], "default": "local",
        "description": "local: this machine's servers; cluster: also the other machines' servers, mirrored by the cluster agent (docs/CLUSTER.md).",
    ]

    static let idArgument: Value = [
        "type": "string", "pattern": .string(idPattern),
        "description": "A server id, as listed by instances/list (e.g. \"journey-service\").",
    ]
}
