"""Print every webhook delivered to http://127.0.0.1:PORT/ and check it."""

from __future__ import annotations

import argparse
import json

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def make_app(secret: str | None) -> web.Application:
    totals = {"deliveries": 0, "leads": 0}
    verifier = Webhook(secret) if secret else None

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        verdict = "unchecked"
        if verifier is not None:
            try:
                verifier.verify(body, dict(request.headers))
                verdict = "signature ok"
            except WebhookVerificationError:
                verdict = "SIGNATURE INVALID"
        leads = json.loads(body)
        totals["deliveries"] += 1
        totals["leads"] += len(leads)
        print(
            f"{request.headers.get('webhook-id')}  {len(leads):3d} leads  "
            f"{len(body):7d} bytes  {verdict}  "
            f"(total {totals['deliveries']} deliveries, {totals['leads']} leads)",
            flush=True,
        )
        return web.Response(text="ok")

    app = web.Application(client_max_size=2 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", receive)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9911)
    parser.add_argument("--secret", help="the subscription's whsec_ secret")
    args = parser.parse_args()
    print(f"listening on http://127.0.0.1:{args.port}/", flush=True)
    web.run_app(make_app(args.secret), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
