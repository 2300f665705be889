"""What a task came to, its images downloaded, and where they are kept.

``outcomes`` (EditResult and friends: the tools' output schemas), ``store`` (downloading and recording result
images), ``sinks`` (ResultSink), ``local_folder`` (the output folder), ``object_sink`` (S3-compatible storage) and
``previews`` (small JPEG previews for a multimodal agent).

May import: ``core.errors``, ``core.clock``, ``core.specs``, ``core.images``, ``core.journal`` and ``dashscope``.
"""
