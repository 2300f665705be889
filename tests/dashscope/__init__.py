"""Tests of the DashScope client, against the emulator and against hostile answers."""
