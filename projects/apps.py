from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = "Projects and allocations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The usage flusher raises the allocation counters with each batch
        # (usage sits below projects and cannot import it: it calls back).
        from projects.allocation import allocation_usage_add
        from usage.buffer import flush_listener_add

        flush_listener_add(allocation_usage_add)

        from projects.audit import projects_audit_register

        projects_audit_register()
