from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and API keys"

    def ready(self) -> None:
        from accounts.audit import accounts_audit_register
        from portal.auditadmin import logentry_admin_install

        accounts_audit_register()
        # The audit log's admin (export, filters) replaces auditlog's own; it
        # runs here because admin autodiscovery has registered that one by now.
        logentry_admin_install()
