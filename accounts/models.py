from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A researcher or operator.

    `pending_approval` marks accounts created while registration needs approval:
    they stay inactive until staff approve them, which keeps them apart from
    accounts that staff deactivated on purpose.
    """

    pending_approval = models.BooleanField(
        default=False,
        help_text="Signed up while registration needs approval; inactive until approved.",
    )
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            models.UniqueConstraint(
                models.functions.Lower("email"),
                condition=~models.Q(email=""),
                name="accounts_user_email_ci_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.username
