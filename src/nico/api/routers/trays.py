"""Routes: trays (filled in by its issue)."""

from __future__ import annotations

from fastapi import APIRouter

from nico.api.deps import NICO_ROUTER_DEPENDENCIES

router = APIRouter(dependencies=NICO_ROUTER_DEPENDENCIES)
