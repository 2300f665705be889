"""Tests of the emulator: DashScope's behaviour as documented, and Model Studio's SDK examples run on it."""
