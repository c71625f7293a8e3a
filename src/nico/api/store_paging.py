"""Turns a validated `PageRequest` (+ parsed `orderBy`) into the store's `Page`."""

from __future__ import annotations

from nico.api.paging import OrderBy, PageRequest
from nico.store.inventory import Page


def store_page(page: PageRequest, order: OrderBy | None) -> Page:
    return Page(
        offset=page.offset,
        limit=page.limit,
        order_field=order.field if order else None,
        descending=order.descending if order else False,
    )
