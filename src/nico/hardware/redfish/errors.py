"""Turn BMC answers and transport failures into `HardwareError`s an operator can act on.

The text of every error built here goes into task reports, so it names the BMC by
address and never carries credentials, Authorization headers or session tokens.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpx

from nico.hardware.interface import HardwareError

# 4xx answers that a later attempt may get past; every other 4xx is permanent.
_RETRYABLE_CLIENT_STATUSES = frozenset({408, 409, 429})
_MAX_DETAIL = 500


class AnswerLost(HardwareError):
    """The request went out on an open connection but no answer came back, so the BMC
    may have acted on it (retryable: a read or an idempotent command may be repeated)."""


class ResetOutcomeUnknown(Exception):
    """A reset that cycles the tray got no answer: it may have been carried out.

    Deliberately not a `HardwareError`: the engine keeps the command's intent in its
    ledger and never sends the cycle again; the rule's verification decides.
    """


# Transport failures after the request may have reached the BMC (no connection failure).
_MAYBE_DELIVERED = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every secret that appears in `text` with `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def redfish_error_detail(body: Any) -> str:
    """The BMC's own words from a Redfish error body.

    `error.@Message.ExtendedInfo[].Message` is what BMCs fill with the specific reason;
    `error.message` is the generic summary, used when no extended message is given.
    """
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if not isinstance(error, dict):
        return ""
    infos = error.get("@Message.ExtendedInfo")
    messages: list[str] = []
    if isinstance(infos, list):
        for info in infos:
            if isinstance(info, dict):
                text = info.get("Message")
                if isinstance(text, str) and text.strip():
                    messages.append(text.strip())
    if messages:
        return "; ".join(dict.fromkeys(messages))
    summary = error.get("message")
    return summary.strip() if isinstance(summary, str) else ""


def is_retryable_status(status: int) -> bool:
    return status >= 500 or status in _RETRYABLE_CLIENT_STATUSES


def error_from_response(
    bmc: str, action: str, response: httpx.Response, secrets: Iterable[str | None]
) -> HardwareError:
    """A failed BMC answer as a HardwareError: `BMC <bmc> refused <action> (HTTP n): why`."""
    try:
        detail = redfish_error_detail(response.json())
    except ValueError:
        detail = ""
    if not detail:
        detail = response.reason_phrase or "no reason given"
    if response.status_code == 401:
        detail = f"{detail} (check the BMC username and password)"
    text = f"BMC {bmc} refused {action} (HTTP {response.status_code}): {detail[:_MAX_DETAIL]}"
    return HardwareError(redact(text, secrets), retryable=is_retryable_status(response.status_code))


def error_from_transport(
    bmc: str, exc: httpx.HTTPError, secrets: Iterable[str | None]
) -> HardwareError:
    """A request that got no answer: unreachable, timed out, or TLS not trusted."""
    if _is_certificate_failure(exc):
        reason = _reason(exc)
        text = (
            f"BMC {bmc} TLS certificate is not trusted: {reason}. Give the site a CA "
            "bundle for its BMCs, or turn TLS verification off for it explicitly"
        )
        return HardwareError(redact(text, secrets), retryable=False)
    if isinstance(exc, httpx.TimeoutException):
        text = f"BMC {bmc} unreachable: no answer within the timeout ({type(exc).__name__})"
    else:
        text = f"BMC {bmc} unreachable: {_reason(exc)}"
    if isinstance(exc, _MAYBE_DELIVERED):
        return AnswerLost(redact(text, secrets), retryable=True, unreachable=True)
    return HardwareError(redact(text, secrets), retryable=True, unreachable=True)


def _is_certificate_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text or type(exc).__name__)[:_MAX_DETAIL]
