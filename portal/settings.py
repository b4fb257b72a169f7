"""Portico settings: one module, configured by environment variables.

Development defaults need nothing running (SQLite, in-process cache, eager Celery);
production values come from the environment (docker/.env.example lists them all).
Bad values stop the process with a message naming the variable.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from portal.env import (
    env_bool,
    env_choice,
    env_database,
    env_int,
    env_list,
    env_origins,
    env_str,
    redis_url_validate,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)

_DEV_SECRET_KEY = "django-insecure-portico-development-key-never-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false")
if not DEBUG and (SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        "SECRET_KEY must be a random value of 50+ characters when DEBUG is false"
    )

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env_origins("CSRF_TRUSTED_ORIGINS", [])

# Public base URL of the portal, used where a page must show an absolute address
# (API snippets). Empty: derived from the request.
SITE_URL = env_str("SITE_URL", "").rstrip("/")
SITE_NAME = env_str("SITE_NAME", "Portico")

INSTALLED_APPS = [
    # Daphne backs `runserver` in development only: production workers run
    # uvicorn and need not load twisted (about 16 MB per worker, measured).
    *(["daphne"] if DEBUG else []),
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "rest_framework",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.saml",
    "auditlog",
    "drf_spectacular",
    "portal",
    "accounts",
    "sso",
    "catalog",
    "apiproxy",
    "usage",
    "projects",
    "chat",
    "ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # NUL in a query string would reach PostgreSQL and fail there (portal/nulguard.py).
    "portal.nulguard.RejectNulMiddleware",
    # A strict Content-Security-Policy on every page (portal/csp.py).
    "portal.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the session's choice (Settings > Account), else the browser's.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Pages in the user's time zone: their choice, else the browser's.
    "portal.timezones.UserTimezoneMiddleware",
    # Records who made each audited change, and from which address (the one
    # the ASGI server vouches for, never a raw X-Forwarded-For; portal/audit.py).
    "portal.audit.AuditlogMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # After authentication and messages: REQUIRE_STAFF_MFA for /admin/.
    "accounts.middleware.StaffMFARequiredMiddleware",
]

ROOT_URLCONF = "portal.urls"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.site",
            ],
        },
    },
]

# Database: SQLite file by default, anything dj-database-url understands by env.
DATABASES = {
    "default": env_database(
        "DATABASE_URL",
        sqlite_path=DATA_DIR / "portico.sqlite3",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: shared cache, limiter state and Celery broker. Absent: all in-process.
REDIS_URL = redis_url_validate("REDIS_URL", env_str("REDIS_URL", "") or None)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "portico",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "portico",
        }
    }

# Celery: Redis broker, or eager in-process execution when there is no Redis.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Filled by the apps that own periodic jobs; every entry is also a management command.

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"  # noqa: E501
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Registration: open, approval (new accounts wait inactive until staff approve
# them in admin) or closed (accounts are made by staff only).
REGISTRATION_MODE = env_choice(
    "REGISTRATION_MODE", "open", ("open", "approval", "closed")
)
ACCOUNT_ADAPTER = "accounts.adapter.PorticoAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env_choice(
    "EMAIL_VERIFICATION", "mandatory", ("mandatory", "optional", "none")
)
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_REAUTHENTICATION_TIMEOUT = env_int("REAUTHENTICATION_SECONDS", 300, minimum=0)
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
LOGIN_URL = "account_login"
# Failed logins counted per client address and per account name; past either
# limit even the right password is refused until the window has passed. The
# admin login is sent through allauth (portal/admin.py), so staff get the same
# limits and two-factor step. Counts live in the default cache: Redis is shared
# by every process, the in-process fallback counts per process.
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
# Two-factor authentication (allauth.mfa), offered to everyone under Settings >
# Account: an authenticator app, security keys and passkeys, recovery codes.
MFA_ADAPTER = "accounts.adapter.PorticoMFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "webauthn", "recovery_codes"]
# A passkey is phishing-resistant and counts as both factors, so it may replace
# the password; password logins of users with MFA still ask for the second step.
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_TOTP_ISSUER = SITE_NAME
# Staff without an authenticator app or security key are sent to set one up
# before any admin page (accounts/middleware.py).
REQUIRE_STAFF_MFA = env_bool("REQUIRE_STAFF_MFA", not DEBUG)

# E-mail: SMTP when EMAIL_HOST is set, else printed on the console under a
# banner (portal/mailconsole.py), so it stands out among the request lines.
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "portal.mailconsole.EmailBackend"
)
# Development only: show the e-mail verification link on the "verify your
# address" page, for a portal that sends no mail. `make run` turns it on when
# EMAIL_HOST is unset; never set it where mail is really sent.
MAIL_SHOWN_ON_PAGE = env_bool("MAIL_SHOWN_ON_PAGE", False)
# Mail subjects and greetings name the portal, not the host it was reached at.
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{SITE_NAME}] "
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are exclusive")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "portico@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

LANGUAGE_CODE = "en-us"
# The pages researchers see are translated (locale/); the admin keeps Django's own.
LANGUAGES = [
    ("en", "English"),
    ("hu", "Magyar"),
    ("et", "Eesti"),
    ("de", "Deutsch"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
# In development WhiteNoise serves straight from the app folders (no collectstatic).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "portal.apierrors.api_exception_handler",
    "DEFAULT_PARSER_CLASSES": ["portal.apierrors.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# --- API keys (accounts) ---------------------------------------------------
# New keys read sk-<tag>_...; changing the tag leaves existing keys valid.
API_KEY_SITE_TAG = env_str("API_KEY_SITE_TAG", "ptc")
if not (
    0 < len(API_KEY_SITE_TAG) <= 16
    and set(API_KEY_SITE_TAG) <= set("abcdefghijklmnopqrstuvwxyz0123456789")
):
    raise ImproperlyConfigured(
        f"API_KEY_SITE_TAG={API_KEY_SITE_TAG!r} must be 1-16 of a-z and 0-9"
    )
# Longest lifetime of a key in days (0: unlimited). Keys asked for without an
# expiry, or with a later one, are capped to it.
API_KEY_MAX_LIFETIME_DAYS = env_int("API_KEY_MAX_LIFETIME_DAYS", 0, minimum=0)
# A process's cached answer for a key is re-checked against the database after
# this many seconds even without a revocation signal (a safety net for changes
# made outside the services, e.g. a user deactivated in a shell).
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 30, minimum=1, maximum=300)
# While the database is unreachable, a key accepted before is served on this
# much longer (accounts/keycache.py); 0 refuses it once its entry is stale.
API_KEY_STALE_SECONDS = env_int("API_KEY_STALE_SECONDS", 300, minimum=0, maximum=3600)
# --- end API keys ----------------------------------------------------------

# Security. Production (DEBUG false) defaults pass `check --deploy`; TLS is
# usually terminated by a reverse proxy that sets X-Forwarded-Proto.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", not DEBUG)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Probes and scrapers talk plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int(
    "SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Portico's own knobs: the proxy, metering and quotas, the catalog, operations
# (and the Celery beat schedule of their periodic jobs).
from portal.settings_runtime import *  # noqa: E402, F403

# Sign-in through institutions (OpenID Connect, SAML; docs/sso.md).
from portal.settings_sso import *  # noqa: E402, F403
