"""`python -m bench.httpserve DIR`: serve DIR's files on 127.0.0.1 with sendfile, Range and ETag.

Prints the port on its first line of stdout. The kernel copies the bytes (sendfile), so the
server is never what limits a loopback download of curl or of `fetch_source`.
"""

from __future__ import annotations

import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = Path(".")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _target(self) -> Path | None:
        name = self.path.split("?", 1)[0].lstrip("/")
        path = (self.root / name).resolve()
        return path if path.is_file() and path.parent == self.root else None

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._serve(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        path = self._target()
        if path is None:
            self.send_error(404)
            return
        size = path.stat().st_size
        start, end, status = 0, size - 1, 200
        match = RANGE.match(self.headers.get("Range", ""))
        if match:
            start = int(match[1])
            end = min(int(match[2]), size - 1) if match[2] else size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{size:x}-{int(path.stat().st_mtime):x}"')
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not body:
            return
        self.wfile.flush()
        with open(path, "rb") as f:
            offset, left = start, end - start + 1
            while left > 0:
                sent = os.sendfile(self.connection.fileno(), f.fileno(), offset, min(left, 1 << 30))
                if sent == 0:
                    break
                offset, left = offset + sent, left - sent


def main(argv: list[str]) -> None:
    Handler.root = Path(argv[0]).resolve()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
