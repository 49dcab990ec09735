"""The Lua scripts of core/lua, the one source of truth for every multi-step operation.

Installed, they are package data (tier/lua/, copied from core/lua by the build); from the
repository, they are read from core/lua itself. Never copied by hand.
"""
from __future__ import annotations

import functools
import pathlib

_HERE = pathlib.Path(__file__).resolve().parent


def lua_dir() -> pathlib.Path:
    """Where the scripts are: the installed package data, or the repository's core/lua."""
    packaged = _HERE / "lua"
    if (packaged / "lock.lua").is_file():
        return packaged
    repo = _HERE.parents[2] / "core" / "lua"
    if (repo / "lock.lua").is_file():
        return repo
    raise FileNotFoundError(f"tier: no Lua scripts in {packaged} or {repo}")


@functools.lru_cache(maxsize=None)
def source(name: str) -> str:
    """The text of core/lua/<name>.lua."""
    return (lua_dir() / f"{name}.lua").read_text(encoding="utf-8")
