"""Every retry budget of the engine, in one place (pure: workflows and activities use it).

Two kinds of failure, two budgets that never mix:

- **Hardware**: what a BMC did or did not do. Retried by the step's `retry` (the rule's
  `maxAttempts`, backoff), `DEFAULT_RETRY` when the step has none. Only these failures
  can fail a tray.
- **Infrastructure**: nico's own database or Temporal did not answer (connection refused,
  pool timeout, a dropped connection, a locked SQLite file, Temporal RPC unavailable). No
  BMC was asked anything, so such a failure says nothing about the hardware: it is
  retried on `INFRA` (minutes, exponential backoff, the activity heartbeating while it
  waits) and never spends a hardware attempt. Only when the whole infrastructure budget
  is spent does the call fail, and then with a text that names the service, never a host,
  port, driver class or URL (`INFRA_MESSAGES`).

Task-row writes (begin, live report, final status) touch only the database, so they get
the infrastructure budget too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio.common import RetryPolicy as TemporalRetryPolicy

from nico.rules.durations import GoDuration
from nico.rules.model import RetryPolicy, SequenceStep

# --- hardware -------------------------------------------------------------------------

# Retry of one action call when the step has no `retry`.
DEFAULT_RETRY = RetryPolicy(
    max_attempts=3,
    initial_interval=GoDuration("1s", 1.0),
    backoff_coefficient=2.0,
    max_interval=GoDuration("30s", 30.0),
)


def retry_of(step: SequenceStep) -> RetryPolicy:
    """The hardware retry budget of one action call of this step."""
    return step.retry or DEFAULT_RETRY


# The Temporal failure type an activity raises when the infrastructure stayed down for
# as long as the activity could wait: Temporal must not retry it as a hardware attempt
# (`hardware_retry_policy` lists it as non-retryable), the workflow waits on INFRA and
# calls again with the hardware attempts that are left.
INFRA_ERROR_TYPE = "InfrastructureUnavailable"


def hardware_retry_policy(retry: RetryPolicy, used: int = 0) -> TemporalRetryPolicy:
    """Temporal's retry for one action call: the rule's budget less the `used` hardware
    attempts of earlier calls of the same action (cut short by an infrastructure outage).
    Infrastructure failures are not retried by Temporal (they would count)."""
    attempts = retry.max_attempts
    if attempts > 0:  # 0 = unlimited, as in Temporal
        attempts = max(attempts - used, 1)
    return TemporalRetryPolicy(
        initial_interval=timedelta(seconds=retry.initial_interval.seconds),
        backoff_coefficient=retry.backoff_coefficient,
        maximum_interval=(
            timedelta(seconds=retry.max_interval.seconds) if retry.max_interval else None
        ),
        maximum_attempts=attempts,
        non_retryable_error_types=[INFRA_ERROR_TYPE],
    )


# A whole step in one `run_step` activity (nico.engine.step_activity): Temporal retries it
# only when its worker died (heartbeat timeout) or the process failed it unexpectedly,
# resuming from its heartbeat details, until the step's budget is spent. The hardware
# budget above applies inside, per action call.
STEP_RETRY = TemporalRetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)
)


# --- infrastructure -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InfraBudget:
    """How long the engine waits out its own database or Temporal being unavailable."""

    total: float  # seconds from the first failure until the call gives up
    initial: float  # first wait
    factor: float  # each wait this much longer than the last
    max_interval: float  # ... up to this

    def delay(self, failures: int, draw: float = 1.0) -> float:
        """The wait after the `failures`-th consecutive failure (1-based), between half
        and all of the backoff by `draw` in [0, 1]: spread, so hundreds of calls waiting
        out one outage do not all come back in the same instant."""
        exponent = min(max(failures - 1, 0), 64)
        backoff = min(self.initial * self.factor**exponent, self.max_interval)
        return backoff * (0.5 + 0.5 * min(max(draw, 0.0), 1.0))


# Ten minutes: a database failover, a PostgreSQL or Temporal restart, a network blip.
INFRA = InfraBudget(total=600.0, initial=0.25, factor=2.0, max_interval=10.0)

DATABASE = "database"
TEMPORAL = "Temporal"
# What an operator reads when the budget ran out: the service, for how long, and that
# no hardware was blamed. Never a host, port, driver class or URL.
INFRA_MESSAGES = {
    DATABASE: "nico's database did not answer (retried {waited}; no BMC was contacted)",
    TEMPORAL: "Temporal did not answer (retried {waited}; no BMC was contacted)",
}


# A poll whose activity failed without an answer: every poll catches what the backend
# or the database did, so only a worker that died or was too starved to heartbeat
# leaves one unanswered. No reading was taken, so it is not the hardware's.
WORKER_SILENT = "nico's worker did not answer the poll (no reading was taken)"


def infra_message(kind: str, waited: str) -> str:
    return INFRA_MESSAGES.get(kind, INFRA_MESSAGES[DATABASE]).format(waited=waited)


def is_infra_reason(reason: str | None) -> bool:
    """Whether a poll's "not yet" reason is an infrastructure outage (whose time the
    poll's own timeout does not count)."""
    if not reason:
        return False
    texts = (*INFRA_MESSAGES.values(), WORKER_SILENT)
    return any(reason.startswith(m.split(" (", 1)[0]) for m in texts)


# Task-row writes: retried until the infrastructure budget is spent.
ROW_ATTEMPT_TIMEOUT = timedelta(seconds=60)
ROW_RETRY = TemporalRetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)
ROW_BUDGET = timedelta(seconds=INFRA.total)
# The final status write retries until it lands (bounded by the workflow's timeout).
FINAL_RETRY = TemporalRetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60)
)
# Live report saves are best effort: the next change, or the final write, catches up.
REPORT_ATTEMPT_TIMEOUT = timedelta(seconds=30)
REPORT_RETRY = TemporalRetryPolicy(maximum_attempts=3)
