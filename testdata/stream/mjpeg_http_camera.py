#!/usr/bin/python3
"""An MJPEG-over-HTTP camera for tests: Python's standard library only.

usage: mjpeg_http_camera.py PORT USER FRAMES_DIR [MODE]   (the password is read
from stdin, so it never appears in argv). Serves every request as
multipart/x-mixed-replace JPEG frames (the *.jpg files of FRAMES_DIR, in a loop,
10 per second) behind HTTP Digest (qop=auth, MD5) on 127.0.0.1:PORT and prints
READY. MODE "basic" asks for Basic instead; "badboundary" breaks the multipart
framing after five frames. Counts requests that got frames on stdout ("STREAM n").
"""
import glob
import hashlib
import http.server
import os
import secrets
import sys
import threading
import time

PORT, USER, FRAMES = int(sys.argv[1]), sys.argv[2], sys.argv[3]
MODE = sys.argv[4] if len(sys.argv) > 4 else "digest"
PASSWORD = sys.stdin.readline().rstrip("\n")
REALM = "camera"
NONCE = secrets.token_hex(16)
frames = [open(f, "rb").read() for f in sorted(glob.glob(os.path.join(FRAMES, "*.jpg")))]
streams = 0
lock = threading.Lock()


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def parse_auth(value):
    out = {}
    for part in value.split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip().strip('"')
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def authorized(self):
        h = self.headers.get("Authorization", "")
        if MODE == "basic":
            import base64

            return h == "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
        if not h.startswith("Digest "):
            return False
        a = parse_auth(h[len("Digest "):])
        if a.get("username") != USER or a.get("nonce") != NONCE or a.get("uri") != self.path:
            return False
        ha1 = md5("%s:%s:%s" % (USER, REALM, PASSWORD))
        ha2 = md5("GET:%s" % a.get("uri"))
        want = md5("%s:%s:%s:%s:%s:%s" % (ha1, NONCE, a.get("nc"), a.get("cnonce"), a.get("qop"), ha2))
        return a.get("response") == want

    def do_GET(self):
        global streams
        if not self.authorized():
            self.send_response(401)
            if MODE == "basic":
                self.send_header("WWW-Authenticate", 'Basic realm="%s"' % REALM)
            else:
                self.send_header("WWW-Authenticate", 'Digest realm="%s", qop="auth", nonce="%s"' % (REALM, NONCE))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        with lock:
            streams += 1
            print("STREAM %d" % streams, flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        n = 0
        try:
            while True:
                if MODE == "badboundary" and n >= 5:
                    self.wfile.write(b"this is no multipart boundary at all\r\n" * 4)
                    self.wfile.flush()
                    time.sleep(0.1)
                    continue
                f = frames[n % len(frames)]
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(f))
                self.wfile.write(f + b"\r\n")
                self.wfile.flush()
                n += 1
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
server.daemon_threads = True
print("READY", flush=True)
server.serve_forever()
