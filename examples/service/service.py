#!/usr/bin/env python3
"""A demo service for edgebot's service contract, version 1 (see SERVICE_CONTRACTS.md).

"matching": /start greets the user and gives them an id of the service's own, /profile
shows what the session holds, the CONNECT and SKIP buttons edit their message, and any
other text gets a short echo. Only Python's standard library; run it with

    python3 examples/service/service.py --port 8001

and point edgebot at it with examples/service/edgebot.toml. With --port 0 it picks a
free port. Its first line on stdout is always `listening on http://HOST:PORT/handle`.

It logs request ids, never what users wrote, and answers a repeated Idempotency-Key
with the response it gave the first time.
"""

import argparse
import json
import logging
import socket
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = "/handle"
# edgebot sends a few KiB at most; refuse anything far bigger without reading it.
MAX_REQUEST_BYTES = 1 << 20
# Telegram's limit for a message's text, in characters.
MAX_TEXT = 4096
# How many responses, and for how long, are kept to answer a repeat. edgebot repeats a
# call within seconds (a retry) or after a restart (a replay), so ten minutes is plenty.
REMEMBER_RESPONSES = 10_000
REMEMBER_SECS = 600

log = logging.getLogger("matching")


class Responses:
    """The responses of recent Idempotency-Keys, so that a repeat gets the same answer.

    A repeat that arrives while the first call is still being answered (edgebot timed out
    and retried) waits for that answer instead of computing a second one.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._done = OrderedDict()  # key -> (stored at, body bytes)
        self._running = {}  # key -> threading.Event

    def answer(self, key, compute):
        """The stored body for `key`, or `compute()`'s, stored. Returns (body, repeated)."""
        if not key:
            return compute(), False
        while True:
            with self._lock:
                self._forget_old()
                if key in self._done:
                    return self._done[key][1], True
                running = self._running.get(key)
                if running is None:
                    running = self._running[key] = threading.Event()
                    break
            running.wait(timeout=30)
        try:
            body = compute()
            with self._lock:
                self._done[key] = (time.monotonic(), body)
                while len(self._done) > REMEMBER_RESPONSES:
                    self._done.popitem(last=False)
            return body, False
        finally:
            with self._lock:
                del self._running[key]
            running.set()

    def _forget_old(self):
        cutoff = time.monotonic() - REMEMBER_SECS
        while self._done and next(iter(self._done.values()))[0] < cutoff:
            self._done.popitem(last=False)


RESPONSES = Responses()


class BadRequest(Exception):
    pass


def respond(request):
    """The contract's response (a dict) to one request (a dict)."""
    if not isinstance(request, dict) or request.get("version") != 1:
        raise BadRequest("not a request of contract version 1")
    update, session, user = request.get("update"), request.get("session"), request.get("user")
    if not isinstance(update, dict) or not isinstance(session, dict):
        raise BadRequest("`update` and `session` must be objects")
    kind = update.get("kind")
    if user is None:
        # A channel post: nobody to talk to.
        return {}
    if not isinstance(user, dict) or not isinstance(session.get("data"), dict):
        raise BadRequest("`user` and `session.data` must be objects")

    data = dict(session["data"])
    internal_id = session.get("internal_user_id")
    known = internal_id is not None
    if not known:
        internal_id = f"u-{user['id']}"

    def kept(**changes):
        """The whole session to store: a session in a response replaces the old one."""
        new = dict(data)
        new.update(changes)
        return {"internal_user_id": internal_id, "state": session.get("state"), "data": new}

    if kind == "callback_query":
        return on_button(update, data, kept)

    command = update.get("command")
    if command == "start":
        visits = int(data.get("visits", 0)) + 1
        greeting = "Welcome" if visits == 1 else "Welcome back"
        return {
            "actions": [
                {
                    "type": "send",
                    "text": f"{greeting}, {escape(user['first_name'])}! "
                    f"Your id here is <code>{internal_id}</code> (visit {visits}).\n"
                    "Shall I find you someone to talk to?",
                    "format": "html",
                    "keyboard": [
                        [
                            {"text": "CONNECT", "callback_data": "match:connect"},
                            {"text": "SKIP", "callback_data": "match:skip"},
                        ]
                    ],
                }
            ],
            "session": kept(visits=visits),
            "events": [{"name": "matching.start", "data": {"visits": visits}}],
        }
    if command == "profile":
        if not known:
            return {"actions": [{"type": "send", "text": "No profile yet: send /start first."}]}
        lines = [f"Your id: {internal_id}"]
        lines += [f"{key}: {value}" for key, value in sorted(data.items())] or ["(no data)"]
        # No `session` key: the session stays as it is, and lives on.
        return {"actions": [{"type": "send", "text": "\n".join(lines)[:MAX_TEXT]}]}

    text = update.get("text")
    if not text or not text.strip():
        return {}
    short = text if len(text) <= 100 else text[:99] + "…"
    return {"actions": [{"type": "send", "text": f"You said: {short}", "reply": True}]}


def on_button(update, data, kept):
    choice = (update.get("callback_data") or "").removeprefix("match:")
    under_message = update.get("message_id") is not None
    if choice == "connect":
        connections = int(data.get("connections", 0)) + 1
        actions = [{"type": "answer_callback", "text": "Looking for a match…"}]
        if under_message:
            actions.insert(0, {"type": "edit", "text": f"Connecting you (request {connections})."})
        return {
            "actions": actions,
            "session": kept(connections=connections),
            "events": [{"name": "matching.connect", "data": {"connections": connections}}],
        }
    if choice == "skip":
        actions = [{"type": "answer_callback"}]
        if under_message:
            actions.insert(0, {"type": "edit", "text": "Skipped. Send /start to try again."})
        return {"actions": actions, "events": [{"name": "matching.skip"}]}
    return {"actions": [{"type": "answer_callback", "text": "That button is no longer used."}]}


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "matching-demo/1"

    def do_POST(self):
        started = time.monotonic()
        request_id = self.headers.get("X-Request-Id", "-")
        if self.path != PATH:
            return self.reply(404, {"error": "not found"}, request_id, started)
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self.reply(411, {"error": "Content-Length needed"}, request_id, started)
        if not 0 <= length <= MAX_REQUEST_BYTES:
            return self.reply(413, {"error": "too large"}, request_id, started)
        raw = self.rfile.read(length)
        try:
            request = json.loads(raw)
        except ValueError:
            return self.reply(400, {"error": "the body is not JSON"}, request_id, started)
        key = self.headers.get("Idempotency-Key")
        if not key and isinstance(request, dict):
            key = request.get("idempotency_key")
        try:
            body, repeated = RESPONSES.answer(key, lambda: encode(respond(request)))
        except BadRequest as e:
            return self.reply(400, {"error": str(e)}, request_id, started)
        except Exception as e:  # a bug: log its kind, not what it was reading
            log.error("request %s failed: %s", request_id, type(e).__name__)
            return self.reply(500, {"error": "internal error"}, request_id, started)
        self.send_body(200, body, request_id, started, repeated)

    def do_GET(self):
        if self.path == PATH:
            self.send_response(405)
            self.send_header("Allow", "POST")
            self.send_header("Connection", "close")
            self.close_connection = True
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.reply(404, {"error": "not found"}, self.headers.get("X-Request-Id", "-"), None)

    def reply(self, status, value, request_id, started):
        self.send_body(status, encode(value), request_id, started, False)

    def send_body(self, status, body, request_id, started, repeated):
        # Logged before the answer goes out, and only ids: never the user's words.
        took = f" in {(time.monotonic() - started) * 1000:.1f} ms" if started else ""
        log.info("request %s: %d%s%s", request_id, status, took, " (repeat)" if repeated else "")
        self.send_response(status)
        if status != 200:
            # The request's body may not have been read: do not read it as the next request.
            self.close_connection = True
            self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        # http.server's own access log would print paths and client addresses; the line
        # in send_body says what is needed.
        pass


def encode(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8001, help="port; 0 picks a free one")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    server_class = ThreadingHTTPServer
    if ":" in args.host:

        class Server6(ThreadingHTTPServer):
            address_family = socket.AF_INET6

        server_class = Server6
    server = server_class((args.host, args.port), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    if ":" in host:
        host = f"[{host}]"
    print(f"listening on http://{host}:{port}{PATH}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
