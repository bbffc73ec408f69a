#!/usr/bin/env python3
"""Example upstream for caddy-alipay-notify: receives the Standard Webhooks POST
the plugin sends for every verified Alipay notification, domestic or Antom
(cross-border).

    WEBHOOK_SECRET=whsec_... PORT=8081 python3 receiver.py

Standard library only, so it runs anywhere python3 does. With pip available,
prefer the official package (pip install standardwebhooks), which does what
verify() below does:
    from standardwebhooks.webhooks import Webhook
    Webhook(secret).verify(raw_body, headers)  # raises on a bad signature
"""
import base64, binascii, hashlib, hmac, json, os, re, sys, threading, time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE = 5 * 60  # seconds, either way, as the Standard Webhooks libraries use
MAX_BODY = 1 << 20  # Alipay notifications are a few KiB


class Rejected(Exception):
    pass


def load_key(secret):
    """The HMAC key is the base64 decoding of the secret after its whsec_ prefix."""
    encoded = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    key = base64.b64decode(encoded, validate=True)
    if not key:
        raise ValueError("empty key")
    return key


def verify(key, msg_id, timestamp, signatures, raw):
    if not (msg_id and timestamp and signatures):
        raise Rejected("missing headers")
    if not re.fullmatch(r"[0-9]{1,15}", timestamp):
        raise Rejected("bad timestamp")
    if abs(time.time() - int(timestamp)) > TOLERANCE:
        raise Rejected("stale timestamp")  # an old message replayed, or a wrong clock
    signed = f"{msg_id}.{timestamp}.".encode() + raw  # the raw bytes, never re-serialised JSON
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    # Space-separated "v1,<base64>" entries; any one match will do (the plugin
    # signs with two secrets while one is being rotated).
    for entry in signatures.split():
        version, _, sig = entry.partition(",")
        if version == "v1" and hmac.compare_digest(sig.encode(), expected):
            return
    raise Rejected("bad signature")


def field(data, *path):
    """The value at path in data as text, "-" when absent: domestic data holds
    only strings, Antom's is its JSON object as posted (nested)."""
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return "-" if data is None or data == "" or isinstance(data, (dict, list)) else str(data)


# What the accepted line prints: order, amount, status, and their Antom counterparts.
FIELDS = (("out_trade_no",), ("total_amount",), ("trade_status",))
ANTOM_FIELDS = (("paymentRequestId",), ("paymentAmount", "value"), ("result", "resultStatus"))

KEY = None
# webhook-ids already processed: Alipay retries keep the same notify_id (Antom's
# the same body, hence the same antom_... id), so this makes a retry harmless. In production store it with the order instead (e.g. a
# unique index on notify_id, written in the transaction that marks it paid).
seen, seen_lock = set(), threading.Lock()


def log(line):
    print(line, flush=True)  # flushed at once: stdout may be a pipe


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_POST(self):
        if self.path.split("?")[0] != "/hooks/alipay":
            return self.reply(404, "not found")
        # The plugin always sends Content-Length (no chunked bodies to handle).
        length = self.headers.get("Content-Length") or "0"
        if not re.fullmatch(r"[0-9]{1,9}", length) or int(length) > MAX_BODY:
            return self.reply(413, "too large")
        raw = self.rfile.read(int(length))
        msg_id = self.headers.get("webhook-id")
        try:
            verify(KEY, msg_id, self.headers.get("webhook-timestamp"),
                   self.headers.get("webhook-signature"), raw)
        except Rejected as e:
            log(f"rejected {msg_id or '-'} {e}")
            return self.reply(401, "invalid signature")
        try:
            event = json.loads(raw, parse_float=Decimal)  # exact digits, never float
            data = event.get("data") or {}
            if not isinstance(data, dict):
                raise ValueError("data is not an object")
            antom = str(event.get("type")).startswith("antom.")
            fields = [field(data, *path) for path in (ANTOM_FIELDS if antom else FIELDS)]
        except (ValueError, AttributeError):
            log(f"rejected {msg_id} malformed payload")  # signed, yet a retry would not fix it
            return self.reply(400, "malformed payload")

        # One lock around check, processing and marking, so two concurrent
        # deliveries of the same id cannot both be processed.
        with seen_lock:
            if msg_id in seen:
                log(f"duplicate {msg_id}")
                return self.reply(200, "duplicate")
            # A real app does its work here, before answering 2xx (a 2xx becomes
            # Alipay's "success" and stops the retries):
            #  - data["out_trade_no"] (Antom: data["paymentRequestId"]) must be
            #    one of its own orders;
            #  - data["total_amount"] must equal the order amount, compared as
            #    strings or decimal.Decimal, never float ("0.10" == stored 0.10);
            #    Antom's data["paymentAmount"] is {currency, value in minor
            #    units}: both must match;
            #  - mark the order paid only for TRADE_SUCCESS or TRADE_FINISHED
            #    (Antom: data["result"]["resultStatus"] == "S").
            # If that fails, answer 5xx without marking the id seen: Alipay retries.
            log(f"accepted {msg_id} {event.get('type') or '-'} {' '.join(fields)}")
            seen.add(msg_id)
        self.reply(200, "ok")

    def do_GET(self):
        if self.path.split("?")[0] == "/hooks/alipay":
            return self.reply(405, "method not allowed")
        self.reply(404, "not found")

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def log_message(self, *args):
        pass  # keep stdout/stderr to the contract lines; add access logs if you want them


def main():
    global KEY
    secret = os.environ.get("WEBHOOK_SECRET")
    if not secret:
        sys.exit("WEBHOOK_SECRET is required (the whsec_... value given to the plugin as webhook_secret)")
    try:
        KEY = load_key(secret)
    except (binascii.Error, ValueError) as e:
        sys.exit(f"WEBHOOK_SECRET is not a valid whsec_ secret: {e}")
    port = int(os.environ.get("PORT") or 8081)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)  # bound and listening now
    log(f"listening on 127.0.0.1:{port}")
    server.serve_forever()


if __name__ == "__main__":
    main()
