"""Tests that spawn the server (stdio, HTTP), drive a browser, or run the tools around it (bench, bundle)."""
