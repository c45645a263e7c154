"""The student notebooks: exactly what the generator makes of the instructor notebooks, and, run in smoke mode,
stopped only by NotImplementedError, and only at their exercise cells."""

import json

import nbformat
import pytest
from nbclient import NotebookClient

from vae_lib.core.settings import REPO_ROOT
from vae_lib.course.student import (
    BEGIN_SOLUTION,
    STUDENT_FOLDER,
    is_exercise_cell,
    notebook_text,
    strip_solutions,
    student_notebook,
)

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
INSTRUCTOR_NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
STUDENT_NOTEBOOKS = sorted((NOTEBOOKS_DIR / STUDENT_FOLDER).glob("*.ipynb"))


def test_strip_solutions_keeps_the_code_around_a_solution_and_its_indent() -> None:
    source = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\nf(2)\n"
    assert strip_solutions(source) == "def f(x):\n    y = 1\n    raise NotImplementedError  # your code here\nf(2)\n"


@pytest.mark.parametrize(
    "source", ["### BEGIN SOLUTION\nx = 1\n", "x = 1\n### END SOLUTION\n", "### BEGIN SOLUTION\n### BEGIN SOLUTION\n"]
)
def test_unbalanced_solution_markers_are_refused(source: str) -> None:
    with pytest.raises(ValueError, match="SOLUTION"):
        strip_solutions(source)


def test_the_student_version_clears_exercise_outputs_and_leaves_the_rest() -> None:
    solution = {"cell_type": "code", "source": ["### BEGIN SOLUTION\n", "x = 1\n", "### END SOLUTION\n"]}
    check = {"cell_type": "code", "source": ["check(x)"], "metadata": {"tags": ["exercise"]}}
    figure = {"cell_type": "code", "source": ["plot()"], "metadata": {}}
    notebook = {
        "cells": [
            {**cell, "outputs": [{"output_type": "stream"}], "execution_count": 1} for cell in (solution, check, figure)
        ]
    }
    student = student_notebook(notebook)
    assert student["cells"][0]["source"] == ["raise NotImplementedError  # your code here\n"]
    assert [cell["outputs"] for cell in student["cells"]] == [[], [], [{"output_type": "stream"}]]
    assert [cell["execution_count"] for cell in student["cells"]] == [None, None, 1]
    assert notebook["cells"][0]["source"][1] == "x = 1\n", "the instructor notebook is left as it was"


def test_there_is_one_committed_student_notebook_per_instructor_notebook() -> None:
    assert [path.name for path in STUDENT_NOTEBOOKS] == [path.name for path in INSTRUCTOR_NOTEBOOKS]


@pytest.mark.parametrize("path", INSTRUCTOR_NOTEBOOKS, ids=lambda path: path.name)
def test_the_committed_student_notebook_is_what_the_generator_makes(path) -> None:
    generated = notebook_text(student_notebook(json.loads(path.read_text())))
    committed = (NOTEBOOKS_DIR / STUDENT_FOLDER / path.name).read_text()
    assert committed == generated, "run `python -m vae_lib student-notebooks` (make student) and commit the result"
    assert BEGIN_SOLUTION not in committed


def test_the_course_has_at_least_six_exercises_each_with_a_solution_and_a_check() -> None:
    cells = [cell for path in INSTRUCTOR_NOTEBOOKS for cell in json.loads(path.read_text())["cells"]]
    solutions = [cell for cell in cells if BEGIN_SOLUTION in "".join(cell["source"])]
    checks = [cell for cell in cells if is_exercise_cell(cell) and "check_" in "".join(cell["source"])]
    assert len(solutions) >= 6 and len(checks) == len(solutions)
    assert all(cell["metadata"]["nbgrader"]["solution"] for cell in solutions), "nbgrader reads solution cells by this"


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=lambda path: path.name)
def test_a_student_notebook_in_smoke_mode_stops_only_at_its_exercises(path, monkeypatch) -> None:
    monkeypatch.setenv("VAE_SMOKE", "1")  # the kernel inherits the environment
    notebook = nbformat.reads(path.read_text(), as_version=4)
    client = NotebookClient(
        notebook, timeout=600, allow_errors=True, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    errors = {
        index: output["ename"]
        for index, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "code"
        for output in cell["outputs"]
        if output["output_type"] == "error"
    }
    exercise_checks = {
        index
        for index, cell in enumerate(notebook["cells"])
        if is_exercise_cell(cell) and "check_" in "".join(cell["source"])
    }
    assert set(errors.values()) <= {"NotImplementedError"}, errors
    assert set(errors) == exercise_checks, "each check of an unsolved exercise stops, and nothing else does"
