"""Interop: the dlr-url listener for interop/kannel.sh. Kannel's smsbox calls it once per
delivery report; each request's query string is appended as one line to OUT.

Usage: python3 kannel_dlr.py PORT OUT
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

port, out = int(sys.argv[1]), sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        with open(out, "a", encoding="utf-8") as f:
            f.write(urlsplit(self.path).query + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
