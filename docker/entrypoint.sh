#!/bin/sh
# Entry point of the Portico image: hands SHUTDOWN_GRACE (seconds running
# streams get after SIGTERM; portal/settings.py) to uvicorn, which reads its
# options from UVICORN_* variables too, then runs the command as PID 1 so
# that it receives the signals itself. Harmless for the Celery commands.
# uvicorn's access log needs no flag here: Django's LOGGING, applied when
# uvicorn loads the app, sends it through portal.accesslog's key mask.
: "${UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN:=${SHUTDOWN_GRACE:-30}}"
export UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN
exec "$@"
