"""Tests of core/tasks: confirmation, uploads, harvest and reconcile."""
