"""The SDK's floor for measure 1: its own minimal ``MCPServer`` with one tool, served over stdio. Spawned by
``run.py`` beside ``python -m wan_image_mcp``, in the same interpreter, with the same mcp."""

from mcp.server import MCPServer

server = MCPServer("floor")


@server.tool()
def echo(text: str) -> str:
    """Say ``text`` back."""
    return text


if __name__ == "__main__":
    server.run()
