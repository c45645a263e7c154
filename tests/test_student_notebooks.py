"""The student notebooks: exactly what the generator makes of the instructor notebooks, and, run in smoke mode from a
plain copy of the repository in a Python that has the pinned packages but not vae_lib (what Binder, a JupyterHub
pulling the repository, or a clone opened in any Jupyter gives a learner), stopped only by NotImplementedError, and
only at their exercise cells."""

import json
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from vae_lib.core.settings import REPO_ROOT, data_dir
from vae_lib.course.student import (
    BEGIN_SOLUTION,
    STUDENT_FOLDER,
    is_exercise_cell,
    notebook_text,
    strip_solutions,
    student_notebook,
    write_student_notebooks,
)
from vae_lib.tools.cli import main

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


def _write_notebook(path: Path, *sources: str) -> None:
    """Write a notebook of code cells with these sources, cell i's id being `cell-i`."""
    cells = [
        {"cell_type": "code", "id": f"cell-{number}", "metadata": {}, "source": source, "outputs": []}
        for number, source in enumerate(sources, start=1)
    ]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


@pytest.mark.parametrize(
    ("broken_cell", "problem"),
    [
        ("x = 1\n### END SOLUTION\n", "line 2: ### END SOLUTION without ### BEGIN SOLUTION"),
        ("y = 0\n### BEGIN SOLUTION\nx = 1\n", "line 2: ### BEGIN SOLUTION without ### END SOLUTION"),
    ],
)
def test_an_unmatched_marker_is_named_by_file_cell_and_line_and_nothing_saved_is_overwritten(
    tmp_path: Path, broken_cell: str, problem: str
) -> None:
    _write_notebook(tmp_path / "01_fine.ipynb", "### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n")
    _write_notebook(tmp_path / "02_broken.ipynb", "print(1)\n", broken_cell)
    saved = tmp_path / STUDENT_FOLDER / "01_fine.ipynb"
    saved.parent.mkdir()
    saved.write_text("the student version saved before")
    with pytest.raises(ValueError) as error:
        write_student_notebooks(tmp_path)
    assert str(error.value) == (
        f"{tmp_path / '02_broken.ipynb'}: cell 2 (id cell-2), {problem}; no student notebook was written"
    )
    assert [path.name for path in saved.parent.iterdir()] == ["01_fine.ipynb"]
    assert saved.read_text() == "the student version saved before"


def test_a_folder_without_notebooks_is_refused_with_a_non_zero_exit(tmp_path: Path, capsys) -> None:
    (tmp_path / "README.md").write_text("not a notebook")
    assert main(["student-notebooks", "--notebooks", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path} holds no notebooks (*.ipynb): give the folder of the instructor notebooks "
        "(the repository's notebooks/)\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["README.md"], "no student folder is made"
    with pytest.raises(ValueError, match="is not a folder"):
        write_student_notebooks(tmp_path / "missing")


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


# Left out of the copy: what a clone does not have (the environment, prepared data, runs, caches).
NOT_IN_A_CLONE = {".git", ".venv", "data", "runs", "__pycache__", ".pytest_cache", ".ipynb_checkpoints"}
COPY_KERNEL = "plain-copy"


def repository_files() -> list[str]:
    """Return the repository's files a clone would hold: git's tracked and unignored files, else a walk without
    NOT_IN_A_CLONE."""
    if shutil.which("git") and (REPO_ROOT / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
            text=True,
        ).stdout.split("\0")
        return [name for name in listed if name and (REPO_ROOT / name).is_file()]
    return [
        str(path.relative_to(REPO_ROOT))
        for path in REPO_ROOT.rglob("*")
        if path.is_file() and not NOT_IN_A_CLONE & set(path.relative_to(REPO_ROOT).parts)
    ]


def setup_cell_source() -> str:
    """Return the notebooks' first code cell, the one that finds vae_lib: the same in every instructor notebook."""
    sources = set()
    for path in INSTRUCTOR_NOTEBOOKS:
        first = next(cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code")
        assert "setup" in first["metadata"].get("tags", []), path.name
        sources.add("".join(first["source"]))
    assert len(sources) == 1, "every notebook starts with the same setup cell"
    return sources.pop()


def environment_without_vae_lib() -> dict[str, str]:
    """Return this process's environment without PYTHONPATH, which could point at a vae_lib."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


@pytest.fixture(scope="module")
def plain_copy(tmp_path_factory) -> dict[str, Path]:
    """A copy of the repository and a fresh virtual environment that sees the pinned packages but not vae_lib.

    The fresh environment's one .pth file lists this environment's site-packages as a path: Python adds that folder
    to sys.path without running the .pth files inside it, so vae_lib's editable-install hook stays off, as on a
    machine that installed requirements.lock and nothing else.
    """
    root = tmp_path_factory.mktemp("plain_copy").resolve()
    venv.EnvBuilder(with_pip=False).create(root / "venv")
    python = next(
        path for path in (root / "venv" / "bin" / "python", root / "venv" / "Scripts" / "python.exe") if path.exists()
    )
    fresh_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout.strip()
    Path(fresh_site, "pinned_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    environment = environment_without_vae_lib()
    probe = subprocess.run(  # from a folder outside any copy: `python -c` puts the current folder on sys.path
        [python, "-c", "import ipykernel, torch, vae_lib"], cwd=root, env=environment, capture_output=True
    )
    assert b"No module named 'vae_lib'" in probe.stderr, "the fresh environment must see the packages but not vae_lib"
    repository = root / "repository"
    for name in repository_files():
        (repository / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, repository / name)
    kernels = root / "jupyter"
    kernel_dir = kernels / "kernels" / COPY_KERNEL
    kernel_dir.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (kernel_dir / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": COPY_KERNEL, "language": "python"})
    )
    return {"python": python, "repository": repository, "kernels": kernels}


def test_the_setup_cell_finds_the_copys_vae_lib_or_says_what_to_do(plain_copy, tmp_path) -> None:
    cell = setup_cell_source() + "\nimport vae_lib\nprint(vae_lib.__file__)\n"
    inside = plain_copy["repository"] / "notebooks" / STUDENT_FOLDER
    found = subprocess.run(
        [plain_copy["python"], "-c", cell],
        cwd=inside,
        env=environment_without_vae_lib(),
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == plain_copy["repository"] / "vae_lib" / "__init__.py"
    outside = subprocess.run(
        [plain_copy["python"], "-c", setup_cell_source()],
        cwd=tmp_path,
        env=environment_without_vae_lib(),
        capture_output=True,
        text=True,
    )
    assert outside.returncode == 0 and outside.stdout.count("\n") == 1, outside.stdout  # one line
    assert "run `pip install -e .` in the repository's folder" in outside.stdout


def test_the_setup_cell_takes_its_own_copy_over_another_one_installed(plain_copy) -> None:
    # This environment has vae_lib installed from REPO_ROOT (pip install -e .): a notebook of another copy (a pulled
    # copy on a hub whose image installed its own, a second clone) must run its own copy's package and outputs/.
    show = "\nimport vae_lib\nprint(vae_lib.__file__)\n"
    installed = subprocess.run(
        [sys.executable, "-c", show], cwd=plain_copy["kernels"], capture_output=True, text=True, check=True
    )
    assert Path(installed.stdout.strip()) == REPO_ROOT / "vae_lib" / "__init__.py", "vae_lib installed from here"
    found = subprocess.run(
        [sys.executable, "-c", setup_cell_source() + show],
        cwd=plain_copy["repository"] / "notebooks" / STUDENT_FOLDER,
        env=environment_without_vae_lib(),
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0 and found.stdout.count("\n") == 1, found.stdout + found.stderr  # nothing else printed
    assert Path(found.stdout.strip()) == plain_copy["repository"] / "vae_lib" / "__init__.py"


@pytest.mark.parametrize("name", [path.name for path in STUDENT_NOTEBOOKS])
def test_a_student_notebook_run_from_a_plain_copy_stops_only_at_its_exercises(name, plain_copy, monkeypatch) -> None:
    # The kernel inherits this environment: smoke mode, the prepared data, no PYTHONPATH, the copy's kernel.
    monkeypatch.setenv("VAE_SMOKE", "1")
    monkeypatch.setenv("VAE_DATA_DIR", str(data_dir().resolve()))
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("JUPYTER_PATH", str(plain_copy["kernels"]))
    path = plain_copy["repository"] / "notebooks" / STUDENT_FOLDER / name
    notebook = nbformat.reads(path.read_text(), as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("import vae_lib\nprint(vae_lib.__file__)"))
    client = NotebookClient(
        notebook,
        timeout=600,
        allow_errors=True,
        kernel_name=COPY_KERNEL,
        resources={"metadata": {"path": str(path.parent)}},
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
    imported_from = Path(notebook.cells[-1]["outputs"][0]["text"].strip())
    assert imported_from == plain_copy["repository"] / "vae_lib" / "__init__.py", "the copy's own vae_lib"
