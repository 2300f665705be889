"""Arguments -> a checked, priced request.

Each paid tool argument declared once, with its type, default, bounds and text (``declarations``), the tool
arguments checked strictly (``arguments``), the request validated against the limits table (``validation``,
reading ``core.specs``), the input images a prompt refers to (``prompt_images``), detection and segmentation
instructions (``detection``), what a call may spend (``spending``), the portable schemas (``schemas``), the spec
tables as text (``catalog``) and the box picker's check (``picking``).

May import: ``core.errors``, ``core.clock``, ``core.specs``, ``core.images``, ``core.results`` (the shapes of an
outcome), ``core.journal`` and ``dashscope``; never ``core.tasks``, ``mcp``, ``mcp_server`` or the emulator.
"""
