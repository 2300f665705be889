"""A task's life after it is prepared: submitted, polled, checked, harvested, reconciled, shown.

``service`` (WanService, the core's front door) validates, journals and submits, and routes check, cancel,
inspect, list and reconcile; ``uploads`` (local images reaching DashScope), ``polling``, ``check``, ``harvest``
(the background harvester), ``reconcile`` and ``matching`` (create requests whose answer never came),
``viewing`` (what the result viewer shows) and ``completions`` (suggestions for completion/complete).

May import every other room of the core and ``dashscope``; never ``mcp``, ``mcp_server`` or the emulator.
"""
