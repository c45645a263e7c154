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
    """Return a cell's source with each solution region replaced by `raise NotImplementedError` at its indent; a
    ValueError naming the line of an unmatched marker."""
    lines, begin_line = [], None  # begin_line: the line of the open region's BEGIN marker, None outside one
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        marker = line.strip()
        if marker == BEGIN_SOLUTION:
            if begin_line is not None:
                raise ValueError(
                    f"line {number}: {BEGIN_SOLUTION} inside the solution region begun on line {begin_line}"
                )
            indent = line[: len(line) - len(line.lstrip())]
            lines.append(f"{indent}raise NotImplementedError  # your code here\n")
            begin_line = number
        elif marker == END_SOLUTION:
            if begin_line is None:
                raise ValueError(f"line {number}: {END_SOLUTION} without {BEGIN_SOLUTION}")
            begin_line = None
        elif begin_line is None:
            lines.append(line)
    if begin_line is not None:
        raise ValueError(f"line {begin_line}: {BEGIN_SOLUTION} without {END_SOLUTION}")
    return "".join(lines)


def is_exercise_cell(cell: dict) -> bool:
    """Return True for a code cell a learner fills in or one that checks it (tagged, or holding a solution marker:
    a lone END marker counts too, so that it is caught rather than copied to the student)."""
    source = "".join(cell["source"])
    return cell["cell_type"] == "code" and (
        EXERCISE_TAG in cell.get("metadata", {}).get("tags", []) or BEGIN_SOLUTION in source or END_SOLUTION in source
    )


def student_notebook(notebook: dict) -> dict:
    """Return the student version of an instructor notebook (a new dict; the input is left as it was); a ValueError
    naming the cell (counted from 1, and its id) and line of an unmatched solution marker."""
    student = copy.deepcopy(notebook)
    for number, cell in enumerate(student["cells"], start=1):
        if is_exercise_cell(cell):
            try:
                cell["source"] = strip_solutions("".join(cell["source"])).splitlines(keepends=True)
            except ValueError as error:
                cell_id = f" (id {cell['id']})" if "id" in cell else ""
                raise ValueError(f"cell {number}{cell_id}, {error}") from error
            cell["outputs"], cell["execution_count"] = [], None
    return student


def notebook_text(notebook: dict) -> str:
    """Return a notebook as Jupyter writes it (one-space indent, sorted keys), so regenerating changes nothing."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write_student_notebooks(notebooks_dir: Path) -> list[Path]:
    """Write the student version of every notebook in `notebooks_dir` into its student/ folder; return the paths.

    Every version is made before any is written, so a notebook with an unmatched marker (the ValueError names its
    file, cell and line) leaves the student folder as it was; a folder without notebooks is a ValueError too.
    """
    sources = sorted(notebooks_dir.glob("*.ipynb"))
    if not sources:
        found = "holds no notebooks (*.ipynb)" if notebooks_dir.is_dir() else "is not a folder"
        raise ValueError(
            f"{notebooks_dir} {found}: give the folder of the instructor notebooks (the repository's notebooks/)"
        )
    texts = {}
    for path in sources:
        try:
            texts[path.name] = notebook_text(student_notebook(json.loads(path.read_text())))
        except ValueError as error:
            raise ValueError(f"{path}: {error}; no student notebook was written") from error
    target = notebooks_dir / STUDENT_FOLDER
    target.mkdir(exist_ok=True)
    written = []
    for name, text in texts.items():
        (target / name).write_text(text)
        written.append(target / name)
    return written
