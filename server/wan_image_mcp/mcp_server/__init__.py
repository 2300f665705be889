"""The MCP adapters: the server, its tools, resources and prompts, the strict tool boundary and the HTTP
transport. They translate between MCP and the core (``wan_image_mcp.core``), and only they import ``mcp``."""
