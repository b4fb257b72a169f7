"""HTTP side of the development OpenID Connect provider: routes, the login
page, discovery, JWKS and the control endpoints, served by the standard
library's threading HTTP server on loopback."""

from __future__ import annotations

import html
import ipaddress
import json
import logging
import secrets
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from authlib.oauth2.rfc6749 import OAuth2Error

from .oidc_server import DevAuthorizationServer, HttpRequest, HttpResponse
from .oidc_store import MISBEHAVE_MODES, Store

log = logging.getLogger("sso.devidp.oidc")

MAX_BODY_BYTES = 1 << 20
SCOPES_SUPPORTED = ["openid", "profile", "email", "groups"]
CLAIMS_SUPPORTED = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
    "groups",
]

LOGIN_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name}</title>
<style>
body {{ font-family: sans-serif; background: #f4f4f6; margin: 0; }}
main {{ max-width: 22rem; margin: 4rem auto; background: #fff; padding: 2rem;
        border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
label, input, button {{ display: block; width: 100%; box-sizing: border-box; }}
input {{ margin: .25rem 0 1rem; padding: .5rem; }}
button {{ padding: .6rem; }}
#error {{ color: #a00; }}
</style>
</head>
<body>
<main>
<h1>{name}</h1>
<p>Sign in to continue to <strong>{client_id}</strong>.</p>
{error}<form method="post" action="{action}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" value="{username}"
       required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password"
       autocomplete="current-password" required>
<button id="sign-in" type="submit">Sign in</button>
</form>
</main>
</body>
</html>
"""


def json_response(status: int, payload: Any) -> HttpResponse:
    return HttpResponse(
        status=status,
        body=json.dumps(payload).encode(),
        headers=[("Content-Type", "application/json"), ("Cache-Control", "no-store")],
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ProviderApp:
    """Routes one parsed request to authlib or to a local view."""

    def __init__(
        self,
        *,
        name: str,
        store: Store,
        server: DevAuthorizationServer,
        control: bool,
    ) -> None:
        self.name = name
        self.store = store
        self.server = server
        self.issuer = server.issuer
        self.control = control

    def dispatch(self, request: HttpRequest, client_host: str) -> HttpResponse:
        path, method = request.path, request.method
        if path.startswith("/_control/"):
            return self.control_view(request, client_host)
        routes = {
            ("GET", "/.well-known/openid-configuration"): self.discovery,
            ("GET", "/jwks"): self.jwks,
            ("GET", "/authorize"): self.authorize,
            ("POST", "/authorize"): self.authorize,
            ("POST", "/token"): self.server.create_token_response,
            ("GET", "/userinfo"): self.userinfo,
            ("POST", "/userinfo"): self.userinfo,
        }
        view = routes.get((method, path))
        if view is not None:
            return view(request)
        if any(route_path == path for _, route_path in routes):
            return json_response(405, {"error": "method_not_allowed"})
        return json_response(404, {"error": "not_found"})

    def discovery(self, request: HttpRequest) -> HttpResponse:
        issuer = self.issuer
        return json_response(
            200,
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "userinfo_endpoint": f"{issuer}/userinfo",
                "jwks_uri": f"{issuer}/jwks",
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": SCOPES_SUPPORTED,
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": CLAIMS_SUPPORTED,
            },
        )

    def jwks(self, request: HttpRequest) -> HttpResponse:
        return json_response(200, self.server.keys.jwks())

    def userinfo(self, request: HttpRequest) -> HttpResponse:
        return self.server.create_endpoint_response("userinfo", request)

    def authorize(self, request: HttpRequest) -> HttpResponse:
        try:
            grant = self.server.get_consent_grant(request)
        except OAuth2Error as error:
            # Redirects to the client when the client and its redirect URI
            # check out, else answers 400 here.
            return self.server.handle_error_response(None, error)
        if request.method == "GET":
            return self.login_page(request, grant.request.payload.client_id)
        form = grant.request.form
        username = form.get("username", "")
        user = self.store.check_password(username, form.get("password", ""))
        if user is None:
            log.info("sign-in refused for user %r", username)
            return self.login_page(
                request,
                grant.request.payload.client_id,
                error="Wrong username or password.",
                username=username,
            )
        mode = self.store.take_misbehave()
        grant.request.misbehave = mode
        if mode == "wrong_state":
            grant.request.payload.data["state"] = f"tampered-{secrets.token_hex(8)}"
        if mode != "none":
            log.info("this login misbehaves: %s", mode)
        return self.server.create_authorization_response(
            grant.request, grant_user=user, grant=grant
        )

    def login_page(
        self, request: HttpRequest, client_id: str, error: str = "", username: str = ""
    ) -> HttpResponse:
        query = urlsplit(request.url).query
        action = f"/authorize?{query}" if query else "/authorize"
        error_html = (
            f'<p id="error" role="alert">{html.escape(error)}</p>\n' if error else ""
        )
        page = LOGIN_PAGE.format(
            name=html.escape(self.name),
            client_id=html.escape(client_id or ""),
            error=error_html,
            action=html.escape(action),
            username=html.escape(username),
        )
        return HttpResponse(
            status=200,
            body=page.encode(),
            headers=[
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "no-store"),
                ("X-Frame-Options", "DENY"),
            ],
        )

    def control_view(self, request: HttpRequest, client_host: str) -> HttpResponse:
        if not self.control or not _is_loopback(client_host):
            return json_response(404, {"error": "not_found"})
        action = request.path.removeprefix("/_control/")
        if action == "health":
            return json_response(200, {"status": "ok", "issuer": self.issuer})
        if request.method != "POST":
            return json_response(405, {"error": "method_not_allowed"})
        content_type = request.headers.get("Content-Type") or ""
        if not content_type.startswith("application/json"):
            return json_response(415, {"error": "send application/json"})
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return json_response(400, {"error": "body is not JSON"})
        if not isinstance(body, dict):
            return json_response(400, {"error": "body is not a JSON object"})
        if action == "misbehave":
            return self.control_misbehave(body)
        if action.startswith("users/") and len(action) > len("users/"):
            return self.control_user(unquote(action.removeprefix("users/")), body)
        return json_response(404, {"error": "not_found"})

    def control_misbehave(self, body: dict[str, Any]) -> HttpResponse:
        mode = body.get("mode")
        if mode not in MISBEHAVE_MODES:
            return json_response(
                400, {"error": f"mode must be one of {sorted(MISBEHAVE_MODES)}"}
            )
        self.store.set_misbehave(mode)
        log.info("control: next login misbehaves: %s", mode)
        return json_response(200, {"mode": mode})

    def control_user(self, username: str, body: dict[str, Any]) -> HttpResponse:
        claims = body.get("claims")
        password = body.get("password")
        if not isinstance(claims, dict):
            return json_response(400, {"error": "'claims' must be a JSON object"})
        if password is not None and not isinstance(password, str):
            return json_response(400, {"error": "'password' must be a string"})
        if not self.store.put_user(username, claims, password):
            return json_response(
                404, {"error": f"no user {username!r}; send a password to create it"}
            )
        log.info("control: claims of user %r replaced", username)
        user = self.store.user(username)
        return json_response(200, {"username": username, "claims": user.claims})


class ProviderRequestHandler(BaseHTTPRequestHandler):
    server: ProviderHTTPServer
    server_version = "devidp-oidc"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        try:
            request = self._parse()
        except ValueError as error:
            response = json_response(400, {"error": str(error)})
        else:
            try:
                response = self.server.app.dispatch(request, self.client_address[0])
            except Exception:
                log.exception("internal error on %s %s", self.command, request.path)
                response = json_response(500, {"error": "server_error"})
        self._send(response)

    def _parse(self) -> HttpRequest:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY_BYTES:
            raise ValueError("request body too large")
        body = self.rfile.read(length) if length else b""
        form: dict[str, list[str]] = {}
        content_type = self.headers.get("Content-Type") or ""
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        return HttpRequest(
            method=self.command,
            url=f"{self.server.app.issuer}{self.path}",
            path=split.path,
            headers=self.headers,
            query=parse_qs(split.query, keep_blank_values=True),
            form=form,
            body=body,
        )

    def _send(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path only: queries and bodies may carry state, codes or tokens.
        path = urlsplit(self.path).path if hasattr(self, "path") else "-"
        log.info("%s %s %s", getattr(self, "command", "-"), path, code)

    def log_error(self, format: str, *args: Any) -> None:
        # http.server's messages may quote the raw request line; keep them out.
        log.warning("malformed request from %s", self.client_address[0])


class ProviderHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: ProviderApp


def make_http_server(port: int) -> ProviderHTTPServer:
    """Bind 127.0.0.1:`port` (0 picks a free one); set `.app` before serving."""
    return ProviderHTTPServer(("127.0.0.1", port), ProviderRequestHandler)
