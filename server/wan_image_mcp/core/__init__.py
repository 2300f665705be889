"""The core: everything the server does, free of MCP — the rooms a request passes through, in order:

* ``requests/``  arguments -> a checked, priced request
* ``images/``    an image reference -> the payload sent
* ``tasks/``     a task's life after it is prepared (``tasks.service.WanService`` is the core's front door)
* ``results/``   what a task came to, its images downloaded, and where they are kept
* ``journal/``   the durable record

and at the top, what every room stands on: ``specs`` (every model limit and capability: the one table),
``errors`` (the core's error tree) and ``clock``.

May import ``dashscope`` (the HTTP API); never ``mcp``, ``mcp_server``, ``settings``, ``wiring`` or the emulator
(import-linter's contracts in pyproject.toml say who may import whom, room by room).
"""
