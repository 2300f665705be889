"""The core: spec tables, image inputs, validation, the task journal, results, polling, the service. Nothing
here knows of MCP (a test keeps it so); the MCP adapters in ``mcp_server`` only translate."""
