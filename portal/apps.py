from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portico"

    def ready(self) -> None:
        from portal.accesslog import access_mask_install

        # After Django's LOGGING, which uvicorn's own set-up precedes.
        access_mask_install()
