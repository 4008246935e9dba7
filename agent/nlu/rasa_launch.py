"""Run ``rasa run ...`` with the auth secret read from a file, not from the command line.

Run by the NLU venv's Python (3.10, Rasa installed, this package not importable):

    .venv-nlu/bin/python agent/nlu/rasa_launch.py TOKEN_FILE run --enable-api ...

``rasa run`` takes ``--auth-token`` and ``--jwt-secret`` only as arguments, and a process's
arguments are readable by every local user (``/proc/PID/cmdline``, ``ps``). Here they are
added to ``sys.argv`` inside the process, which changes what Rasa parses but not what
``/proc`` shows: others see only the token file's name.
"""

import sys

del sys.path[0]  # this folder: its modules must not shadow what Rasa imports

from pathlib import Path  # noqa: E402


def main() -> None:
    token_file, *rasa_args = sys.argv[1:]
    token = Path(token_file).read_text().strip()
    if len(token) < 32:
        sys.exit(f"{token_file}: the NLU auth token must be at least 32 characters")
    sys.argv = [
        "rasa", *rasa_args,
        "--auth-token", token,
        "--jwt-secret", token, "--jwt-method", "HS256",
    ]  # fmt: skip
    from rasa.__main__ import main as rasa_main  # noqa: PLC0415 (after sys.argv is set)

    rasa_main()


if __name__ == "__main__":
    main()
