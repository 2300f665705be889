"""Run a command, pass stdin through, and copy its stdout both to our stdout and to a file.

Usage: python stdio_tee.py LOGFILE COMMAND [ARGS...]. The end-to-end tests run the server under it to read
every byte the server wrote to stdout during a session.
"""

import subprocess
import sys


def main() -> int:
    log_path, *command = sys.argv[1:]
    with open(log_path, "ab") as log, subprocess.Popen(command, stdout=subprocess.PIPE) as child:
        assert child.stdout is not None
        for line in child.stdout:
            log.write(line)
            log.flush()
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
        return child.wait()


if __name__ == "__main__":
    raise SystemExit(main())
