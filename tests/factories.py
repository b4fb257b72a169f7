"""Small factory functions for tests (no JSON fixtures)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from allauth.account.models import EmailAddress

from accounts.models import User
from accounts.services import IssuedKey, apikey_create
from catalog.models import Backend, Deployment, Model
from usage.models import UsageRecord

PASSWORD = "correct horse battery staple"


def user_make(*, username: str, password: str = PASSWORD, **fields: Any) -> User:
    fields.setdefault("email", f"{username}@example.org")
    user = User.objects.create_user(username=username, password=password, **fields)
    EmailAddress.objects.create(
        user=user, email=user.email, verified=True, primary=True
    )
    return user


def apikey_make(*, user: User, name: str = "laptop", **fields: Any) -> IssuedKey:
    """A key through the real service; `.raw` is the key, `.key` the record."""
    return apikey_create(user=user, name=name, **fields)


def backend_make(
    *, name: str = "gpu01", base_url: str = "http://127.0.0.1:9/v1", **fields: Any
) -> Backend:
    """A backend row as staff would save it (nothing listens on port 9)."""
    return Backend.objects.create(name=name, base_url=base_url, **fields)


def model_make(
    *,
    public_id: str = "llama-test",
    backend: Backend | None = None,
    upstream_model: str | None = None,
    **fields: Any,
) -> Model:
    """A model with one enabled, served route (on `backend`, or a new one)."""
    model = Model.objects.create(public_id=public_id, **fields)
    Deployment.objects.create(
        model=model,
        backend=backend or backend_make(name=f"backend-{public_id}"),
        upstream_model=upstream_model or public_id,
    )
    return model


def usage_record_make(
    *,
    user: User,
    started_at: datetime,
    model: str = "fake-chat",
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    weight: float = 1.0,
    **fields: Any,
) -> UsageRecord:
    """A usage record written the way the meter writes it (usage_records_create)."""
    from usage.metering import MeteredRow, weighted
    from usage.recordwrite import usage_records_create

    row = MeteredRow(
        **{
            "request_id": "req_" + uuid.uuid4().hex,
            "user_id": user.pk,
            "key_id": None,
            "model": model,
            "backend_id": None,
            "endpoint": "chat/completions",
            "client": "api",
            "stream": False,
            "status": 200,
            "finish_reason": "stop",
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "usage_source": "reported",
            "weighted_tokens": weighted(prompt_tokens, completion_tokens, weight),
            "ttft_ms": 20,
            "duration_ms": 100,
            "retry_count": 0,
            "started_at": started_at,
            **fields,
        }
    )
    usage_records_create(rows=[row])
    return UsageRecord.objects.get(request_id=row.request_id)
