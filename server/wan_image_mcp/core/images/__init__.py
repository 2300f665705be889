"""An image reference -> the payload sent.

What a reference is and reading it (``references``, within the allowed folders of ``access``), the decode
budget and the check remembered per file (``decoding``, ``streams``), conforming to a model's limits
(``conforming``, ``pixels``), the entry point on each call's threads (``inputs``), reports for inspect_image
(``inspection``), Pillow (``pillow``: every module takes Pillow from there) and the process's image state
(``runtime``: the decode budget, the checked files, the band threads, Pillow's guard, set on first decode).

May import: ``core.errors``, ``core.clock``, ``core.specs`` and ``dashscope``; nothing else of the core.
"""
