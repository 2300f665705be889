"""Tests of core/journal: the durable record."""
