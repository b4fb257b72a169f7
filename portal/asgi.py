"""ASGI entry point: two doors, one house.

The OpenAI API paths go straight to the lean proxy app (no Django middleware, no
sync hand-offs); the chat's streaming call goes through the browser door
(apiproxy.browser), everything else is Django. Channels' URLRouter does the split.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
# Django must be set up before anything imports models.
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from apiproxy.app import PROXY_PATH_PATTERN, proxy_application  # noqa: E402
from apiproxy.lifespan import lifespan_application, requests_tracked  # noqa: E402
from chat.stream import STREAM_PATH, chat_stream_application  # noqa: E402
from ops.probes import PROBE_PATH_PATTERN, probes_application  # noqa: E402
from portal.bodyguard import body_deadline  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Tracked so that a shutdown lets cancelled requests meter themselves.
        "http": requests_tracked(
            URLRouter(
                [
                    re_path(PROXY_PATH_PATTERN, proxy_application),
                    # Liveness, readiness and metrics, beside Django (ops.probes).
                    re_path(PROBE_PATH_PATTERN, probes_application),
                    # The chat's streaming call: session + CSRF, then the proxy's
                    # pipeline as browser traffic (apiproxy.browser).
                    re_path(rf"^{STREAM_PATH}$", chat_stream_application),
                    # Django reads bodies without a deadline: it gets one here.
                    re_path(r"", body_deadline(django_application)),
                ]
            )
        ),
        "lifespan": lifespan_application,
    }
)
