"""Tests of the MCP translation, in process: tools, resources, prompts, completions, Apps, OAuth."""
