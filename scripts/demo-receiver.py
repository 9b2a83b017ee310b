#!/usr/bin/env python3
"""A generic-channel receiver: what an in-house app runs to take channel-bridge's replies.

It verifies each request's Standard Webhooks signature (HMAC-SHA256 over
"{webhook-id}.{webhook-timestamp}.{body}" with the channel's whsec_ key, timestamp within
5 minutes), prints the reply, and answers {"id": "app-out-N"}: the id your status events
name later. Python's standard library only; copy it as the start of your own receiver.

    python3 scripts/demo-receiver.py --port 9000 [--secret whsec_...]
    (the secret defaults to $WEBHOOK_SECRET, else the demo channel's published one)
"""
import argparse, base64, hashlib, hmac, http.server, json, os, sys, time

DEMO_SECRET = "whsec_Y2hhbm5lbC1icmlkZ2UtZGV2LXNlY3JldC1vbmx5ISE="


def verify(key, headers, body):
    """True when one of the signatures is ours and the timestamp is fresh."""
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
        return False
    signed = f"{msg_id}.{stamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in headers.get("webhook-signature", "").split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", default=os.environ.get("WEBHOOK_SECRET", DEMO_SECRET))
    args = parser.parse_args()
    key = base64.b64decode(args.secret.removeprefix("whsec_"))
    taken = 0

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            nonlocal taken
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if not verify(key, self.headers, body):
                print("refused: bad signature", flush=True)
                return self.answer(401, {"error": "invalid signature"})
            reply = json.loads(body)
            text = " ".join(p.get("text", f"[{p['type']}]") for p in reply.get("parts", []))
            taken += 1
            print(f"verified reply {reply['id']} to {reply['to']['id']}: {text}", flush=True)
            self.answer(200, {"id": f"app-out-{taken}"})

        def answer(self, status, document):
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_):
            pass

    print(f"listening on 127.0.0.1:{args.port}", flush=True)
    http.server.HTTPServer(("127.0.0.1", args.port), Receiver).serve_forever()


if __name__ == "__main__":
    sys.exit(main())
