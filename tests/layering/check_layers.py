#!/usr/bin/env python3
"""The layering rule of docs/layout.md as a test: a file includes only its own layer and
the layers below it, and handler code never touches libuv or hiredis directly.

    check_layers.py SOURCE_DIR          check the tree; exit 1 naming every violation
    check_layers.py --self-test         show that a planted violation is caught
"""
import os
import re
import sys
import tempfile

# Layers, by folder (the longest matching prefix wins). For each: which project headers
# (by their include path prefix) and which outside headers it may include.
CORE = ("tier/",)
LAYERS = {
    # hiredis's reader building tier::Reply: below both transports.
    "core/tier/resp/": {"project": ("tier/", "tier/resp/"),
                        "forbid_project": ("tier/sync/", "tier/uv/", "tier/pg/"),
                        "forbid_system": ("uv.h", "libpq-fe.h", "spdlog/", "curl/", "yaml-cpp/")},
    "core/tier/sync/": {"project": ("tier/", "tier/sync/", "tier/resp/"), "forbid_project": ("tier/uv/", "tier/pg/"),
                        "forbid_system": ("uv.h", "libpq-fe.h", "spdlog/", "curl/", "yaml-cpp/")},
    "core/tier/uv/": {"project": ("tier/", "tier/uv/", "tier/resp/"), "forbid_project": ("tier/sync/", "tier/pg/"),
                      "forbid_system": ("libpq-fe.h", "spdlog/", "yaml-cpp/")},
    "core/tier/pg/": {"project": ("tier/", "tier/uv/", "tier/pg/"), "forbid_project": ("tier/sync/",),
                      "forbid_system": ("hiredis/", "spdlog/", "yaml-cpp/", "curl/")},
    "core/tier/": {"project": ("tier/",), "forbid_project": ("tier/sync/", "tier/uv/", "tier/pg/", "tier/resp/"),
                   "forbid_system": ("uv.h", "hiredis/", "libpq-fe.h", "spdlog/", "fmt/", "curl/", "yaml-cpp/")},
    # config may use libpq's conninfo parser alone (tier::pg_conninfo: no I/O, no loop), so
    # that a bad conninfo is refused with its YAML path before anything connects.
    "config/": {"project": ("tier/", "config/"), "forbid_project": ("tier/sync/", "tier/uv/", "tier/pg/", "tier/resp/"),
                "allow": ("tier/pg/conninfo.hpp",),
                "forbid_system": ("uv.h", "hiredis/", "libpq-fe.h", "curl/")},
    "handlers/": {"project": ("tier/", "config/", "handlers/"), "forbid_project": ("tier/sync/", "tier/resp/"),
                  "forbid_system": ("uv.h", "hiredis/", "libpq-fe.h", "curl/")},
    "daemon/": {"project": ("tier/", "config/", "handlers/", "daemon/"), "forbid_project": (),
                "forbid_system": ()},
    "cli/": {"project": ("tier/", "tier/sync/", "cli/"), "forbid_project": ("tier/uv/", "tier/pg/", "tier/resp/"),
             "forbid_system": ("uv.h", "libpq-fe.h", "spdlog/", "yaml-cpp/", "curl/")},
}
PROJECT_ROOTS = ("tier/", "config/", "handlers/", "daemon/", "cli/")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def layer_of(rel):
    best = None
    for prefix in LAYERS:
        if rel.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def violations(root):
    found = []
    for top in ("core", "config", "handlers", "daemon", "cli"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in files:
                if not name.endswith((".hpp", ".cpp", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                layer = layer_of(rel)
                if layer is None:
                    continue
                rules = LAYERS[layer]
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                for m in INCLUDE.finditer(text):
                    target = m.group(2)
                    line = text.count("\n", 0, m.start()) + 1
                    where = f"{rel}:{line}: {m.group(0).strip()}"
                    if target in rules.get("allow", ()):
                        continue
                    if target.startswith(PROJECT_ROOTS):
                        if any(target.startswith(p) for p in rules["forbid_project"]):
                            found.append(f"{where}: {layer} may not include {target} (a higher or sibling layer)")
                        elif not any(target.startswith(p) for p in rules["project"]):
                            found.append(f"{where}: {layer} may not include {target} (a higher layer)")
                    elif any(target == s or target.startswith(s) for s in rules["forbid_system"]):
                        found.append(f"{where}: {layer} may not use {target}")
    return found


def self_test():
    with tempfile.TemporaryDirectory() as tmp:
        planted = {
            "core/tier/cache.hpp": '#include "tier/uv/async_client.hpp"\n',
            "config/config.hpp": '#include "handlers/handler.hpp"\n',
            "handlers/x/x.cpp": "#include <uv.h>\n",
            "handlers/y/y.cpp": '#include "daemon/app.hpp"\n',
            "cli/main.cpp": '#include "tier/pg/conn.hpp"\n',
            "core/tier/ok.cpp": '#include "tier/keys.hpp"\n#include <string>\n',
        }
        for rel, text in planted.items():
            os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
            with open(os.path.join(tmp, rel), "w") as f:
                f.write(text)
        found = violations(tmp)
        caught = {v.split(":")[0] for v in found}
        want = set(planted) - {"core/tier/ok.cpp"}
        if caught != want:
            print("self-test failed: caught", sorted(caught), "wanted", sorted(want))
            return 1
    print("self-test: every planted violation caught, the clean file passed")
    return 0


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--self-test":
        return self_test()
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    found = violations(sys.argv[1])
    for v in found:
        print(v)
    if found:
        print(f"{len(found)} layering violation(s); the layers are in docs/layout.md")
        return 1
    print("layering: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
