from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "sso"
    verbose_name = "Sign-in with institutions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sso import receivers  # noqa: F401  (connects allauth's login signals)
        from sso.audit import sso_audit_register

        sso_audit_register()
