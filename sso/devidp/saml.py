"""A real SAML 2.0 IdP (pysaml2) on loopback, for tests and `SSO_DEMO=1`.

    python -m sso.devidp.saml --port 0 --name "Test University SAML" \\
        --users users.json --sp-metadata URL_OR_FILE [--sp ENTITY_ID=ACS_URL] \\
        [--control]

Prints `SAML IdP ready at http://127.0.0.1:<port>` once serving. The entity ID
is `<base>/metadata`, the SSO URL `<base>/sso/redirect` (HTTP-Redirect;
`<base>/sso/post` takes the HTTP-POST binding). Responses go by HTTP-POST to
the ACS URL of the AuthnRequest, which must be in the SP's metadata; the
assertion is signed (RSA-SHA256) with a key made at start-up.

Modules: saml_keys (key, certificate), saml_users (accounts), saml_sps (trusted
SPs), saml_idp (pysaml2), saml_pages (HTML), saml_http (server),
saml_launcher (run it as a child process from tests)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
import warnings
from pathlib import Path

from sso.devidp.saml_launcher import RunningSamlIdP, saml_idp_running, saml_idp_start

__all__ = ["RunningSamlIdP", "main", "saml_idp_running", "saml_idp_start"]

logger = logging.getLogger("sso.devidp.saml")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sso.devidp.saml", description="Dev SAML 2.0 IdP"
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--name", default="Dev SAML IdP", help="display name")
    parser.add_argument("--users", required=True, type=Path, help="users JSON file")
    parser.add_argument(
        "--sp-metadata",
        action="append",
        default=[],
        metavar="FILE_OR_URL",
        help="SP metadata; URLs are fetched at the first AuthnRequest",
    )
    parser.add_argument(
        "--sp",
        action="append",
        default=[],
        metavar="ENTITY_ID=ACS_URL",
        help="trust an SP without metadata",
    )
    parser.add_argument(
        "--control", action="store_true", help="enable /_control/ endpoints"
    )
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when stdin closes (the launcher's parent went away)",
    )
    return parser.parse_args(argv)


def _watch_stdin(stop: threading.Event) -> None:
    def watch() -> None:
        try:
            while sys.stdin.buffer.read1(4096):
                pass
        except (OSError, ValueError):
            pass
        stop.set()

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


def serve(args: argparse.Namespace, stop: threading.Event) -> None:
    # Imported here so that `import sso.devidp.saml` (for the launcher) does
    # not load pysaml2.
    from sso.devidp.saml_http import IdPHTTPServer
    from sso.devidp.saml_idp import DevSamlIdP
    from sso.devidp.saml_keys import generate_signing_pair
    from sso.devidp.saml_sps import parse_sp_option
    from sso.devidp.saml_users import UserStore

    users = UserStore.from_file(args.users)
    trusted = dict(parse_sp_option(value) for value in args.sp)
    with tempfile.TemporaryDirectory(prefix="devidp-saml-") as tmp:
        httpd = IdPHTTPServer(("127.0.0.1", args.port), control=args.control)
        base_url = f"http://127.0.0.1:{httpd.port}"
        try:
            httpd.idp = DevSamlIdP(
                base_url=base_url,
                name=args.name,
                users=users,
                signing=generate_signing_pair(Path(tmp), args.name),
                sp_sources=list(args.sp_metadata),
                sp_trusted=trusted,
            )
            thread = threading.Thread(
                target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
            )
            thread.start()
            print(f"SAML IdP ready at {base_url}", flush=True)
            while not stop.wait(0.2):
                pass
            logger.info("stopping")
            httpd.shutdown()
            thread.join(timeout=5)
        finally:
            httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="devidp-saml %(levelname)s %(name)s: %(message)s",
    )
    # pysaml2 logs whole messages at DEBUG and chatters at INFO.
    for noisy in ("saml2", "xmlschema"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="CFB has been moved")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if args.exit_on_stdin_eof:
        _watch_stdin(stop)
    serve(args, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
