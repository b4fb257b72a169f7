"""What staff (or set-up code such as `make run`) declare about a model that
its backend does not report; discovery leaves declared fields alone."""

from __future__ import annotations

from catalog.models import ALL_CAPABILITIES, Model


def model_capabilities_declare(
    *, public_id: str, embedding_dimensions: int | None = None, **supports: bool
) -> bool:
    """Set capabilities (`embeddings=True`, `tools=False`, ...) and lock them
    against the next discovery. Returns whether the model exists."""
    unknown = set(supports) - set(ALL_CAPABILITIES)
    if unknown:
        raise ValueError(f"unknown capabilities: {', '.join(sorted(unknown))}")
    fields: dict[str, object] = {f"supports_{name}": v for name, v in supports.items()}
    if embedding_dimensions is not None:
        fields["embedding_dimensions"] = embedding_dimensions
    return bool(
        Model.objects.filter(public_id=public_id).update(
            capabilities_locked=True, **fields
        )
    )
