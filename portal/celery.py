"""The Celery app: Redis broker, tasks autodiscovered from each app's tasks.py.

Without REDIS_URL the settings make tasks run eagerly in-process, so development
needs no broker. The beat schedule lives in settings (CELERY_BEAT_SCHEDULE).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
