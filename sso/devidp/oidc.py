"""A real OpenID Connect provider on loopback, for tests and `SSO_DEMO=1`.

Built on authlib's server side (authorization code grant, PKCE S256 required,
OpenID Connect ID tokens signed RS256 with a key made at start-up), served by
the standard library's threading HTTP server. Run it as::

    python -m sso.devidp.oidc --port 0 --name "Test University" \\
        --client CLIENT_ID:SECRET:REDIRECT_URI [--client ...] \\
        --users users.json [--control]

It prints ``OIDC provider ready at http://127.0.0.1:<port>`` on stdout once it
listens; the issuer is that URL. Endpoints: ``/.well-known/openid-configuration``,
``/authorize`` (an HTML sign-in form), ``/token``, ``/userinfo``, ``/jwks`` and,
with ``--control``, ``/_control/health``, ``/_control/users/<username>`` and
``/_control/misbehave``. Tests start it through `oidc_provider_running`.

The modules: `oidc_store` (clients, users, codes, tokens), `oidc_server`
(authlib glue), `oidc_http` (routes and pages), `oidc_launcher` (subprocess
launcher).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .oidc_launcher import (
    OIDCClient,
    RunningOIDCProvider,
    oidc_provider_running,
    oidc_provider_start,
)

__all__ = [
    "OIDCClient",
    "RunningOIDCProvider",
    "main",
    "oidc_provider_running",
    "oidc_provider_start",
]

READY_LINE = "OIDC provider ready at {issuer}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sso.devidp.oidc",
        description="Development OpenID Connect provider on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--name", required=True, help="shown on the sign-in page")
    parser.add_argument(
        "--client",
        action="append",
        required=True,
        metavar="CLIENT_ID:SECRET:REDIRECT_URI",
        help="repeat, also with one id to allow several redirect URIs",
    )
    parser.add_argument("--users", type=Path, required=True, help="users JSON file")
    parser.add_argument(
        "--control", action="store_true", help="serve /_control/* (loopback only)"
    )
    return parser.parse_args(argv)


def build(args: argparse.Namespace):
    """Bind the port and assemble the provider; returns the HTTP server."""
    from .oidc_http import ProviderApp, make_http_server
    from .oidc_server import DevAuthorizationServer, SigningKeys
    from .oidc_store import Store, load_users, merge_clients, parse_client_arg

    clients = merge_clients(parse_client_arg(value) for value in args.client)
    store = Store(clients, load_users(args.users))
    httpd = make_http_server(args.port)
    issuer = f"http://127.0.0.1:{httpd.server_address[1]}"
    server = DevAuthorizationServer(store, issuer, SigningKeys.generate())
    httpd.app = ProviderApp(
        name=args.name, store=store, server=server, control=args.control
    )
    return httpd


def serve(httpd) -> None:
    """Serve until SIGTERM or SIGINT, then shut down cleanly."""
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    )
    worker.start()
    print(READY_LINE.format(issuer=httpd.app.issuer), flush=True)
    while not stop.wait(0.5):
        if not worker.is_alive():
            break
    httpd.shutdown()
    httpd.server_close()
    logging.getLogger("sso.devidp.oidc").info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s devidp-oidc %(levelname)s %(message)s",
    )
    try:
        httpd = build(args)
    except (OSError, ValueError) as error:
        print(f"devidp-oidc: {error}", file=sys.stderr)
        return 2
    serve(httpd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
