"""wan-image-mcp: Alibaba Cloud Model Studio's Wan image models for MCP agents."""

__version__ = "0.1.0"
