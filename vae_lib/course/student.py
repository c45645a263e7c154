"""The student notebooks, generated from the instructor notebooks: one source, two versions.

Each solution between nbgrader's `### BEGIN SOLUTION` and `### END SOLUTION` becomes `raise NotImplementedError`,
and the exercise cells (tagged `exercise`: the cells learners fill in and the checks after them) lose their outputs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
EXERCISE_TAG = "exercise"
STUDENT_FOLDER = "student"


def strip_solutions(source: str) -> str:
    """Return a cell's source with each solution region replaced by `raise NotImplementedError` at its indent."""
    lines, inside = [], False
    for line in source.splitlines(keepends=True):
        marker = line.strip()
        if marker == BEGIN_SOLUTION:
            if inside:
                raise ValueError(f"{BEGIN_SOLUTION} inside a solution region")
            indent = line[: len(line) - len(line.lstrip())]
            lines.append(f"{indent}raise NotImplementedError  # your code here\n")
            inside = True
        elif marker == END_SOLUTION:
            if not inside:
                raise ValueError(f"{END_SOLUTION} without {BEGIN_SOLUTION}")
            inside = False
        elif not inside:
            lines.append(line)
    if inside:
        raise ValueError(f"{BEGIN_SOLUTION} without {END_SOLUTION}")
    return "".join(lines)


def is_exercise_cell(cell: dict) -> bool:
    """Return True for a code cell a learner fills in or one that checks it (tagged, or holding a solution)."""
    source = "".join(cell["source"])
    return cell["cell_type"] == "code" and (
        EXERCISE_TAG in cell.get("metadata", {}).get("tags", []) or BEGIN_SOLUTION in source
    )


def student_notebook(notebook: dict) -> dict:
    """Return the student version of an instructor notebook (a new dict; the input is left as it was)."""
    student = copy.deepcopy(notebook)
    for cell in student["cells"]:
        if is_exercise_cell(cell):
            cell["source"] = strip_solutions("".join(cell["source"])).splitlines(keepends=True)
            cell["outputs"], cell["execution_count"] = [], None
    return student


def notebook_text(notebook: dict) -> str:
    """Return a notebook as Jupyter writes it (one-space indent, sorted keys), so regenerating changes nothing."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write_student_notebooks(notebooks_dir: Path) -> list[Path]:
    """Write the student version of every notebook in `notebooks_dir` into its student/ folder; return the paths."""
    target = notebooks_dir / STUDENT_FOLDER
    target.mkdir(exist_ok=True)
    written = []
    for path in sorted(notebooks_dir.glob("*.ipynb")):
        student_path = target / path.name
        student_path.write_text(notebook_text(student_notebook(json.loads(path.read_text()))))
        written.append(student_path)
    return written
