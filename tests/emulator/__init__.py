"""Tests of the emulator: DashScope's behaviour as documented, and the seed's SDK examples run on it."""
