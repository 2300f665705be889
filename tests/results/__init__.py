"""Tests of core/results: where result images are kept (the S3-compatible sink)."""
