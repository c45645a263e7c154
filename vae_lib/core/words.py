"""How the package's messages write a count with its noun: '1 epoch', '2 epochs', '10,000 test images'.

One home, so every message, table and repr agrees.
"""

from __future__ import annotations


def counted(number: int, noun: str) -> str:
    """Return the count with its noun, plural unless the count is one, thousands separated: '1 thread', '2 threads'."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
