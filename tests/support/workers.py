"""`nico worker` as a real process of its own, for drills that kill workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from nico.services import Services

NICO = Path(sys.executable).parent / "nico"


class WorkerProcess:
    """`nico worker` as a separate process, configured like production through NICO_*."""

    def __init__(
        self, services: Services, address: str, log: Path, *, sim_latency: float = 1.0
    ) -> None:
        settings = services.settings
        self.env = {
            **os.environ,
            "NICO_DATABASE_URL": settings.resolved_database_url(),
            "NICO_DATA_DIR": str(settings.data_dir),
            "NICO_SECRET_KEY": settings.secret_key or "",
            "NICO_TEMPORAL_ADDRESS": address,
            "NICO_TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
            "NICO_SIM_LATENCY": str(sim_latency),
            "NICO_LOG_LEVEL": "WARNING",
            # Tests that want the state sync ask for it.
            "NICO_STATE_SYNC_INTERVAL": os.environ.get("NICO_STATE_SYNC_INTERVAL", "0"),
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(NICO), "worker"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, in-flight activities are simply lost."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
