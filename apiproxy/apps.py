from django.apps import AppConfig


class ApiproxyConfig(AppConfig):
    name = "apiproxy"
    verbose_name = "API proxy"
