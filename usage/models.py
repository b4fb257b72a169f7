from django.conf import settings
from django.db import models


class UsageRecord(models.Model):
    """One request through the proxy (API or browser chat), written in batches
    by the usage buffer and never updated afterwards.

    The foreign keys carry no database constraint on purpose: a key or backend
    deleted while its records wait in the buffer must not make the batch fail.
    """

    class Source(models.TextChoices):
        API = "api", "API"
        BROWSER = "browser", "Browser chat"

    class TokenSource(models.TextChoices):
        REPORTED = "reported", "Reported by the backend"
        COUNTED = "counted", "Counted by the proxy"
        ESTIMATED = "estimated", "Estimated"

    request_id = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="usage_records",
        db_constraint=False,
    )
    key = models.ForeignKey(
        "accounts.ApiKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="usage_records",
        db_constraint=False,
    )
    model = models.CharField(max_length=200, blank=True)
    backend = models.ForeignKey(
        "apiproxy.Backend",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
    )
    endpoint = models.CharField(max_length=40)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    stream = models.BooleanField(default=False)
    status = models.PositiveSmallIntegerField()
    finish_reason = models.CharField(max_length=40, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    token_source = models.CharField(
        max_length=10, choices=TokenSource.choices, default=TokenSource.ESTIMATED
    )
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    retry_count = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(db_index=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["user", "started_at"])]
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.status}"
