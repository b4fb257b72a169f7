from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Model catalog"

    def ready(self) -> None:
        # accounts sits below the catalog and cannot import it: the key form
        # learns the models a user may call through this registration.
        from accounts.selectors import model_choices_source_set
        from catalog.audit import catalog_audit_register
        from catalog.selectors import model_ids_for_user

        model_choices_source_set(model_ids_for_user)
        catalog_audit_register()
