from django.apps import AppConfig


class ApiproxyConfig(AppConfig):
    """The proxy's runtime. It stays an installed app for its migration
    history only: the tables its first migrations created belong to `catalog`
    since apiproxy 0004, and the runtime itself has no models, admin or views."""

    name = "apiproxy"
    verbose_name = "API proxy"
