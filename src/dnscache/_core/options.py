"""The options as typed keywords: ``install(**options: Unpack[Options])`` and friends."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TypedDict

from .envvars import Hook

# --- the options as typed keywords ---


class Options(TypedDict, total=False):
    """The keyword options of ``install()``, ``patched()`` and ``Resolver()``: Config's fields.

    Used as ``**options: Unpack[Options]``, so a type checker rejects a misspelt
    or mistyped option. Each key and its type follow the Config field of the same
    name, in the same order (a test keeps them in step); four accept more than the
    field stores, because the validators normalise them: ``hosts`` and ``preload``
    take any iterable of addresses (or one string) per name, ``nameservers`` one
    string or any iterable, ``persist`` a path-like.
    """

    ttl: float
    negative_ttl: float
    maxsize: int
    max_views: int
    disabled: bool
    hosts: Mapping[str, str | Iterable[str]]
    on_cache_miss: Hook | None
    on_change: Hook | None
    refresh: bool
    refresh_at: float
    stale_ttl: float
    resolve_timeout: float
    backend: str
    nameservers: str | Iterable[str]
    min_ttl: float
    max_ttl: float
    cleanup_interval: float
    happy_eyeballs_delay: float
    failure_penalty: float
    persist: str | os.PathLike[str] | None
    persist_mode: str
    persist_max_age: float
    preload: Mapping[str, str | Iterable[str]]
    trace: bool
    control: bool
    tls_ca_bundle: str | None
    ttl_source: str
