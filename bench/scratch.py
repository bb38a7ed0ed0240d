"""A scratch copy of the working tree, for the mutation runs (`bench.mutation_score`, `bench.mutations`).

The copy is the tree as git sees it: tracked and new files, uncommitted edits included, nothing ignored (no
virtualenv, no caches), so a mutant is planted in exactly the code under review and never in the real tree.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_tree(destination: Path) -> list[str]:
    """Copy the working tree into `destination`; the relative paths git listed (a deleted but still tracked
    file is listed, not copied)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    names = [name for name in listed.split("\0") if name]
    for name in names:
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return names
