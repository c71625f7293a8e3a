"""Text limits shared by stored task messages and report errors (pure, so workflow code
can import it without pulling in the database layer)."""

from __future__ import annotations

MESSAGE_MAX_BYTES = 512


def truncate_utf8(text: str, limit: int = MESSAGE_MAX_BYTES) -> str:
    """Cut to at most `limit` bytes without splitting a UTF-8 character."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")
