"""Usage: raw records (one per request), hourly and daily rollups, the rollup
job's state row, and token quotas.

Vocabulary is the export's (`manage.py exportusage`): `client` is api or
browser, `usage_source` says where the token counts came from.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class UsageRecord(models.Model):
    """One request through the proxy (API or browser chat), written in batches
    by the usage buffer; only `rollup_batch` changes afterwards.

    The foreign keys carry no database constraint and are not cascaded: a key,
    backend or user deleted while its records wait in the buffer must not make
    the batch fail, and history keeps the ids it was written with.
    """

    class Client(models.TextChoices):
        API = "api", "API"
        BROWSER = "browser", "Browser chat"

    class UsageSource(models.TextChoices):
        REPORTED = "reported", "Reported by the backend"
        COUNTED = "counted", "Counted by the proxy"
        ESTIMATED = "estimated", "Estimated"

    request_id = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        related_name="usage_records",
        db_constraint=False,
    )
    key = models.ForeignKey(
        "accounts.ApiKey",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="usage_records",
        db_constraint=False,
    )
    model = models.CharField(max_length=200, blank=True)
    backend = models.ForeignKey(
        "catalog.Backend",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
    )
    endpoint = models.CharField(max_length=40)
    client = models.CharField(max_length=10, choices=Client.choices, default=Client.API)
    stream = models.BooleanField(default=False)
    status = models.PositiveSmallIntegerField()
    finish_reason = models.CharField(max_length=40, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # Of the completion tokens, those the model spent thinking (reported by
    # the backend, or its reasoning chunks counted): a part, not added on.
    reasoning_tokens = models.PositiveIntegerField(default=0)
    usage_source = models.CharField(
        max_length=10, choices=UsageSource.choices, default=UsageSource.ESTIMATED
    )
    # (prompt + completion) x the model's quota weight when the request ran.
    weighted_tokens = models.PositiveBigIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    retry_count = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(db_index=True)
    recorded_at = models.DateTimeField(auto_now_add=True)
    # Null until a rollup run has added this record to the hourly and daily
    # tables; set in the same transaction as that addition (exactly once).
    rollup_batch = models.PositiveBigIntegerField(null=True, blank=True)
    # The project a project key billed (None: the user's own budget).
    project = models.ForeignKey(
        "projects.Project",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
    )

    class Meta:
        indexes = [
            models.Index(fields=["user", "started_at"]),
            models.Index(
                fields=["id"],
                condition=Q(rollup_batch__isnull=True),
                name="usage_record_not_rolled",
            ),
        ]
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.status}"


class UsageTotals(models.Model):
    """What both rollup tables add up, per user, key and model."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
    )
    # 0 for requests without a key (browser chat); keys may be deleted, their
    # totals stay.
    key_id = models.PositiveBigIntegerField(default=0)
    model = models.CharField(max_length=200)
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    # Of the completion tokens, those spent thinking (UsageRecord's).
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    weighted_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        abstract = True


class HourlyUsage(UsageTotals):
    hour = models.DateTimeField(help_text="Start of the hour (UTC).")

    class Meta:
        verbose_name = "hourly usage"
        verbose_name_plural = "hourly usage"
        ordering = ["-hour"]
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "user", "key_id", "model"], name="usage_hourly_bucket"
            )
        ]
        indexes = [models.Index(fields=["user", "hour"])]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h user {self.user_id} {self.model}"


class DailyUsage(UsageTotals):
    day = models.DateField(help_text="Calendar day in the portal's TIME_ZONE.")

    class Meta:
        verbose_name = "daily usage"
        verbose_name_plural = "daily usage"
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "user", "key_id", "model"], name="usage_daily_bucket"
            )
        ]
        # And, on PostgreSQL, a BRIN index on day (migration 0008): reports
        # over every user read only the blocks of their days.
        indexes = [models.Index(fields=["user", "day"])]

    def __str__(self) -> str:
        return f"{self.day} user {self.user_id} {self.model}"


# Time to first token of served, streamed requests: the upper bounds (ms,
# exclusive) of the analytics histogram's buckets; the last bucket is open.
# Log-spaced, each bound at most 1.5 times the one before from 50 ms up, so a
# percentile read from summed buckets (ops.analytics) is right to within one
# bucket. Changing them changes what the columns mean: rebuild the rollups
# (`rollupusage --rebuild`) over every day kept after any change.
TTFT_BOUNDS_MS = (
    25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000,
    3000, 4000, 5000, 7500, 10000, 15000, 20000, 30000, 60000, 120000,
)  # fmt: skip
TTFT_BUCKETS = tuple(f"ttft_{index:02d}" for index in range(len(TTFT_BOUNDS_MS) + 1))


class AnalyticsTotals(models.Model):
    """What the staff analytics add up per day: requests by how they ended,
    tokens, and a histogram of time to first token (columns `ttft_00` ...
    `ttft_23`, one per bucket of TTFT_BOUNDS_MS, added below).

    How a request ended, by status: served (below 400), refused with 429
    (rate limit, quota, too many waiting), refused with 503 (the model's queue
    full or its wait too long, no healthy backend), refused otherwise (other
    4xx: a bad request, no access, an allocation used up), failed (other 5xx,
    and the rare record without a status). They add up to every request.
    Chat (browser) and API requests are counted together; `served_browser`
    says how many of the served came from the chat. Tokens are summed over
    every request (refusals carry none), as in the daily usage totals."""

    served = models.PositiveIntegerField(default=0)
    served_browser = models.PositiveIntegerField(default=0)
    refused_429 = models.PositiveIntegerField(default=0)
    refused_503 = models.PositiveIntegerField(default=0)
    refused_other = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    weighted_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        abstract = True

    @property
    def requests(self) -> int:
        return (
            self.served
            + self.refused_429
            + self.refused_503
            + self.refused_other
            + self.failed
        )


for _bucket in TTFT_BUCKETS:
    AnalyticsTotals.add_to_class(_bucket, models.PositiveIntegerField(default=0))


class DailyUserAnalytics(AnalyticsTotals):
    """Per local day, user and project (0: the user's own budget): what the
    analytics break down by project, and, joined to users when asked, by
    group, affiliation and service class. Filled by the usage rollup."""

    day = models.DateField(help_text="Calendar day in the portal's TIME_ZONE.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
    )
    # Projects may be deleted; their history stays (as for keys above).
    project_id = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = verbose_name_plural = "daily user analytics"
        constraints = [
            models.UniqueConstraint(
                fields=["day", "user", "project_id"], name="usage_analytics_user_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} user {self.user_id} project {self.project_id}"


class DailyModelAnalytics(AnalyticsTotals):
    """Per local day, model and backend (0: refused before one was chosen):
    the per-model figures (time to first token, shares of 429 and 503) that
    say whether a model needs another replica. Filled by the usage rollup."""

    day = models.DateField(help_text="Calendar day in the portal's TIME_ZONE.")
    model = models.CharField(max_length=200)
    backend_id = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = verbose_name_plural = "daily model analytics"
        constraints = [
            models.UniqueConstraint(
                fields=["day", "model", "backend_id"], name="usage_analytics_model_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model} backend {self.backend_id}"


class UsageReport(DailyUsage):
    """Admin's entry for the usage report (a view over the daily totals)."""

    class Meta:
        proxy = True
        verbose_name = "usage report"
        verbose_name_plural = "usage report"


class RollupState(models.Model):
    """The rollup job's one row (a FillState): locked by every run so runs never
    overlap, marked started/done so a crashed run is visible, with the job's
    watermarks."""

    class State(models.TextChoices):
        STARTED = "started", "started"
        DONE = "done", "done"

    name = models.CharField(max_length=40, unique=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.DONE)
    # Every record committed before this instant is in the rollups.
    rolled_through = models.DateTimeField(null=True, blank=True)
    # Raw records that started before this were pruned: rebuilding rollups
    # from raw is only possible from here on.
    pruned_before = models.DateTimeField(null=True, blank=True)
    last_batch = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.state} through {self.rolled_through}"


class Quota(models.Model):
    """Weighted tokens per period for one user (an override) or one group (the
    default of its members). A user's own quota wins over their groups'; among
    groups the most generous (compared per day) applies; nobody listed here
    and in no listed group is unlimited."""

    class Period(models.TextChoices):
        DAY = "day", "per day"
        WEEK = "week", "per week (from Monday)"
        MONTH = "month", "per month"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="quota",
    )
    group = models.OneToOneField(
        "auth.Group",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="quota",
    )
    tokens = models.PositiveBigIntegerField(
        help_text="Tokens (prompt + completion, times each model's quota weight) "
        "per period. 0 blocks every model with a weight above 0."
    )
    period = models.CharField(max_length=5, choices=Period.choices)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True)
                | Q(user__isnull=True, group__isnull=False),
                name="usage_quota_user_xor_group",
            )
        ]

    def __str__(self) -> str:
        who = f"user {self.user}" if self.user_id else f"group {self.group}"
        return f"{who}: {self.tokens:,} tokens {self.get_period_display()}"
