"""The suite, mirroring the package: a folder per room of the core, dashscope/, emulator/, mcp_server/; e2e/
for what spawns the server or drives a browser; support/ for shared helpers. conftest.py holds fixtures only."""
