"""Packages core/lua/*.lua into tier/lua/ at build time, so that an installed tier runs the
very scripts libtier and tierd run (they are never copied into this folder by hand).
Everything else is in pyproject.toml."""
import pathlib
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent
LUA = HERE.parents[1] / "core" / "lua"


class BuildWithScripts(build_py):
    def run(self):
        super().run()
        if not (LUA / "lock.lua").is_file():
            raise SystemExit(f"tier: cannot find the Lua scripts in {LUA} (build from the "
                             "tierd repository)")
        out = pathlib.Path(self.build_lib) / "tier" / "lua"
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(LUA.glob("*.lua")):
            shutil.copyfile(f, out / f.name)


setup(cmdclass={"build_py": BuildWithScripts})
