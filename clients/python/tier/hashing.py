"""code_hash: the content hash that deduplicates analyses (docs/contracts.md#code_hash).

The lowercase hex SHA-256 of the UTF-8 code after normalisation: CRLF and lone CR become LF,
trailing spaces, tabs, form feeds and vertical tabs are stripped from every line, trailing
empty lines are dropped, and there is no final newline. The same as libtier's
``tier::code_hash`` and ``tierctl dedup-hash``, over the shared vectors in
``tests/vectors/code_hash.json``.
"""
from __future__ import annotations

import hashlib
import re

_TRAILING = re.compile(r"[ \t\f\v]+$")


def normalize_code(code: str | bytes) -> str:
    """The text that code_hash hashes.

    >>> normalize_code("def f():\\r\\n    return 1  \\r\\n\\r\\n")
    'def f():\\n    return 1'
    """
    if isinstance(code, bytes):
        code = code.decode("utf-8", errors="surrogateescape")
    code = code.replace("\r\n", "\n").replace("\r", "\n")
    lines = [_TRAILING.sub("", line) for line in code.split("\n")]
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines)


def code_hash(code: str | bytes) -> str:
    """The analysis dedup hash of ``code``.

    >>> code_hash("x = 1\\n") == code_hash("x = 1   \\r\\n\\r\\n")
    True
    """
    return hashlib.sha256(
        normalize_code(code).encode("utf-8", errors="surrogateescape")).hexdigest()
