"""HTML of the dev SAML IdP: the login form (ids `username`, `password`,
`sign-in`; `login-error` when the password was wrong), the HTTP-POST binding's
auto-submitting form, and error pages. Every value is escaped."""

from __future__ import annotations

from html import escape

from sso.devidp.saml_idp import IssuedResponse

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;"
    "padding:0 1rem}label,input,button{display:block;width:100%;"
    "box-sizing:border-box;margin:.35rem 0}input,button{padding:.5rem}"
    ".error{color:#a40000}"
)


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def login_page(
    name: str,
    login_id: str,
    sp_entity_id: str,
    *,
    username: str = "",
    error: str | None = None,
) -> str:
    error_html = (
        f'<p id="login-error" class="error" role="alert">{escape(error)}</p>'
        if error
        else ""
    )
    body = (
        f"<h1>{escape(name)}</h1>"
        f'<p>Sign in to continue to <code id="sp">{escape(sp_entity_id)}</code>.</p>'
        f"{error_html}"
        '<form id="login-form" method="post" action="/sso/login">'
        f'<input type="hidden" name="login" value="{escape(login_id)}">'
        '<label for="username">Username</label>'
        '<input id="username" name="username" autocomplete="username"'
        f' value="{escape(username)}" required autofocus>'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password"'
        ' autocomplete="current-password" required>'
        '<button id="sign-in" type="submit">Sign in</button>'
        "</form>"
    )
    return _document(name, body)


def post_binding_page(name: str, issued: IssuedResponse) -> str:
    """The HTTP-POST binding: a form to the ACS that submits itself."""
    relay = (
        f'<input type="hidden" name="RelayState" value="{escape(issued.relay_state)}">'
        if issued.relay_state is not None
        else ""
    )
    body = (
        f'<form id="saml-post" method="post" action="{escape(issued.acs_url)}">'
        '<input type="hidden" name="SAMLResponse"'
        f' value="{escape(issued.saml_response)}">'
        f"{relay}"
        "<noscript><p>JavaScript is off: press Continue to finish signing in.</p>"
        '<button id="continue" type="submit">Continue</button></noscript>'
        "</form>"
        '<script>document.getElementById("saml-post").submit();</script>'
    )
    return _document(name, body)


def error_page(name: str, message: str) -> str:
    body = (
        f"<h1>{escape(name)}</h1>"
        f'<p id="idp-error" class="error" role="alert">{escape(message)}</p>'
    )
    return _document(name, body)
