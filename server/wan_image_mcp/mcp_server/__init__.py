"""The MCP adapters: the server and its lifespan (``app``), its tools, resources, prompts and completions, the
strict tool boundary, the Apps pages (``apps/``) and the transports (``transports/``). They translate between MCP
and the core, and only they (with the demo, an MCP client) import ``mcp``.

May import ``mcp``, ``wiring``, ``settings``, the core and ``dashscope``.
"""
