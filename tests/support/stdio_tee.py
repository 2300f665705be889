"""Run a command, pass stdin through, and copy its stdout both to our stdout and to a file.

Usage: python stdio_tee.py LOGFILE [--stderr ERRFILE] COMMAND [ARGS...]. The end-to-end tests run the
server under it to read every byte the server wrote to stdout (and, with --stderr, to stderr) in a session.
"""

import subprocess
import sys


def main() -> int:
    log_path, *command = sys.argv[1:]
    errors = None
    if command[0] == "--stderr":
        errors = open(command[1], "ab")  # noqa: SIM115 - closed below, after the child exits
        command = command[2:]
    with open(log_path, "ab") as log, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors) as child:
        assert child.stdout is not None
        for line in child.stdout:
            log.write(line)
            log.flush()
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
        code = child.wait()
    if errors:
        errors.close()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
