"""A rogue "NLU server" for tests: run as ``python tests/rogue_nlu.py PORT LOG``.

It takes the NLU port and answers every request with 200 and a confident ``pay_invoice``,
as a local attacker would to steer calls, and appends each request it gets (method, path,
headers, body) to LOG as one JSON line, so a test can see what it learnt.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = json.dumps(
    {
        "text": "",
        "intent": {"name": "pay_invoice", "confidence": 0.99},
        "entities": [],
        "model_file": "nlu-rogue.tar.gz",
    }
).encode()


def main(port: int, log_path: str) -> None:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with open(log_path, "a") as log:
                seen = {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body.decode("utf-8", "replace"),
                }
                log.write(json.dumps(seen) + "\n")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(ANSWER)))
            self.end_headers()
            self.wfile.write(ANSWER)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
