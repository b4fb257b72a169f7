"""The dev SAML IdP's HTTP side, on the standard library's threading server:
metadata, the SSO endpoints (HTTP-Redirect and HTTP-POST bindings), the login
form's target, and, with --control, the loopback control endpoints. Request
logs carry method, path and status only: never query strings (SAMLRequest),
form bodies (passwords) or responses."""

from __future__ import annotations

import ipaddress
import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT

from sso.devidp.saml_idp import DevSamlIdP, SamlRequestError
from sso.devidp.saml_pages import error_page, login_page, post_binding_page
from sso.devidp.saml_users import UserDataError

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
CONTROL_PREFIX = "/_control/"


class IdPHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], *, control: bool) -> None:
        super().__init__(address, IdPRequestHandler)
        self.control = control
        self.idp: DevSamlIdP | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class BadRequest(Exception):
    pass


class IdPRequestHandler(BaseHTTPRequestHandler):
    server: IdPHTTPServer
    server_version = "PorticoDevSamlIdP/1"

    # -- plumbing ---------------------------------------------------------

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = urlsplit(self.path).path
        logger.info("%s %s %s", self.command, path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.warning("%s", format % args)

    @property
    def idp(self) -> DevSamlIdP:
        assert self.server.idp is not None
        return self.server.idp

    def _send(self, status: int, body: str, content_type: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _html(self, body: str, status: int = HTTPStatus.OK) -> None:
        self._send(status, body, "text/html; charset=utf-8")

    def _json(self, payload: Any, status: int = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(payload), "application/json")

    def _error(self, message: str, status: int = HTTPStatus.BAD_REQUEST) -> None:
        self._html(error_page(self.idp.name, message), status)

    def _body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as error:
            raise BadRequest("bad Content-Length") from error
        if length < 0 or length > MAX_BODY:
            raise BadRequest("body too large")
        return self.rfile.read(length)

    def _form(self) -> dict[str, str]:
        fields = parse_qs(self._body().decode("utf-8", "replace"))
        return {key: values[0] for key, values in fields.items()}

    def _json_body(self) -> Any:
        raw = self._body()
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError as error:
            raise BadRequest("body is not JSON") from error

    # -- routing ----------------------------------------------------------

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        routes = {
            "/": self._index,
            "/metadata": self._metadata,
            "/sso/redirect": lambda: self._sso(query, BINDING_HTTP_REDIRECT),
        }
        self._dispatch(url.path, routes)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        routes = {
            "/sso/post": lambda: self._sso(self._form(), BINDING_HTTP_POST),
            "/sso/login": self._login,
        }
        self._dispatch(path, routes)

    def _dispatch(self, path: str, routes: dict[str, Any]) -> None:
        try:
            if path.startswith(CONTROL_PREFIX):
                self._control(path[len(CONTROL_PREFIX) :])
            elif path in routes:
                routes[path]()
            else:
                self._error("Not found.", HTTPStatus.NOT_FOUND)
        except BadRequest as error:
            self._error(str(error))
        except Exception:
            logger.exception("%s %s failed", self.command, path)
            self._error("Internal error.", HTTPStatus.INTERNAL_SERVER_ERROR)

    # -- IdP pages ----------------------------------------------------------

    def _index(self) -> None:
        self._html(error_page(self.idp.name, "A SAML 2.0 IdP for tests and demos."))

    def _metadata(self) -> None:
        self._send(HTTPStatus.OK, self.idp.metadata_xml, "application/samlmetadata+xml")

    def _sso(self, params: dict[str, str], binding: str) -> None:
        saml_request = params.get("SAMLRequest")
        if not saml_request:
            raise BadRequest("SAMLRequest is missing.")
        try:
            login_id = self.idp.begin_login(
                saml_request, binding, params.get("RelayState")
            )
        except SamlRequestError as error:
            self._error(f"Cannot sign you in: {error}.")
            return
        pending = self.idp.pending(login_id)
        assert pending is not None
        self._html(login_page(self.idp.name, login_id, pending.sp_entity_id))

    def _login(self) -> None:
        form = self._form()
        login_id = form.get("login", "")
        pending = self.idp.pending(login_id)
        if pending is None:
            self._error("This sign-in has expired: start again at the service.")
            return
        username = form.get("username", "").strip()
        user = self.idp.users.authenticate(username, form.get("password", ""))
        if user is None:
            logger.info("failed sign-in for %r", username)
            page = login_page(
                self.idp.name,
                login_id,
                pending.sp_entity_id,
                username=username,
                error="Wrong username or password.",
            )
            self._html(page)
            return
        try:
            issued = self.idp.complete_login(login_id, user)
        except SamlRequestError as error:
            self._error(f"Cannot sign you in: {error}.")
            return
        self._html(post_binding_page(self.idp.name, issued))

    # -- control ----------------------------------------------------------

    def _control(self, action: str) -> None:
        if not self.server.control or not _is_loopback(self.client_address[0]):
            self._error("Not found.", HTTPStatus.NOT_FOUND)
            return
        if self.command in ("GET", "HEAD") and action == "health":
            self._json({"status": "ok", "entity_id": self.idp.entity_id})
        elif self.command in ("GET", "HEAD") and action == "last-response":
            issued = self.idp.last_response()
            if issued is None:
                self._json({"error": "no response issued yet"}, HTTPStatus.NOT_FOUND)
            else:
                self._json(issued.as_json())
        elif self.command == "POST" and action == "misbehave":
            self._control_misbehave(self._json_body())
        elif self.command == "POST" and action.startswith("users/"):
            self._control_user(unquote(action[len("users/") :]), self._json_body())
        else:
            self._json({"error": "unknown control endpoint"}, HTTPStatus.NOT_FOUND)

    def _control_misbehave(self, payload: Any) -> None:
        mode = payload.get("mode") if isinstance(payload, dict) else None
        try:
            self.idp.set_misbehave(str(mode))
        except ValueError as error:
            self._json({"error": str(error)}, HTTPStatus.BAD_REQUEST)
            return
        self._json({"mode": mode})

    def _control_user(self, username: str, payload: Any) -> None:
        if not username:
            self._json({"error": "username missing"}, HTTPStatus.BAD_REQUEST)
            return
        try:
            user, created = self.idp.users.update(username, payload)
        except KeyError:
            self._json(
                {"error": "unknown user; give a password to create it"},
                HTTPStatus.NOT_FOUND,
            )
            return
        except UserDataError as error:
            self._json({"error": str(error)}, HTTPStatus.BAD_REQUEST)
            return
        status = HTTPStatus.CREATED if created else HTTPStatus.OK
        body = {
            "username": user.username,
            "name_id": user.name_id,
            "attributes": user.attributes,
            "created": created,
        }
        self._json(body, status)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
