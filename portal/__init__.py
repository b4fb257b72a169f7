"""Portico's Django project.

The Celery app (portal/celery.py) is not imported here, unlike Django's usual
Celery set-up: web workers never send tasks, and Celery's stack is 5.7 MB of
every serving process's memory. `celery -A portal` finds portal.celery by
itself, and each tasks.py binds its tasks to that app by importing it, so a
task sent from anywhere always goes through Portico's broker settings.
"""
