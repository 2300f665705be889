"""MCP Apps: the result viewer and the box picker, for clients that render them.

``extension`` (the SDK's Apps extension with our ``ui://`` pages), ``pages`` (the ``ui/*.html`` pages with the
vendored ext-apps SDK inlined) and ``picker`` (pick_boxes and the app-only record_boxes: translation only).

May import ``mcp``, the core and the rest of ``mcp_server``.
"""
