"""How the server is reached: ``stdio`` (our reader before the SDK's parser), ``http`` (serve --transport
http: bearer token, DNS-rebinding protection) and ``oauth`` (OAuth 2.1 for the HTTP server).

May import ``mcp``, the core, ``settings`` and the rest of ``mcp_server``.
"""
