"""Tests of core/requests: arguments, validation, prompt references, detection, spending."""
