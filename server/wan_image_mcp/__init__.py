"""wan-image-mcp: Alibaba Cloud Model Studio's Wan image models for MCP agents.

``cli`` (the commands) runs ``mcp_server`` (the MCP adapters) or the ``demo``, over ``wiring`` (the one place that
builds the service from ``settings``), over the ``core`` (what the server does), over ``dashscope`` (the HTTP
API); the ``emulator`` is DashScope on loopback, for the demo and the tests. The Layout page (docs/layout.md) names
every module.
"""

__version__ = "0.1.0"
