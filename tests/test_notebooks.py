"""The committed notebooks: numbered, each with checked outputs, figures, no embedded videos, small, and each
ending with a summary, questions with answers and references. (nbval runs them; this checks what a reader sees on
GitHub and what CI compares.)"""

import json
import re
from dataclasses import replace

import pytest

from vae_lib.core.config import RECIPES
from vae_lib.core.settings import REPO_ROOT
from vae_lib.course.notebooks import LIVE_SETTINGS, SMOKE_SETTINGS, notebook_config, notebook_run_dir

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def test_the_course_has_numbered_notebooks() -> None:
    names = [path.name for path in NOTEBOOKS]
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", name) for name in names)
    assert [name[:2] for name in names][:5] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_ends_with_a_summary_questions_with_answers_and_references(path) -> None:
    markdown = "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"][-4:])
    assert "## Summary" in markdown and "## References" in markdown
    assert markdown.count("<details>") >= 2
    assert all(name in markdown for name in ("Kingma", "Rezende", "An Introduction to Variational Autoencoders"))
    assert "seed project" not in path.read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_committed_with_outputs_figures_and_checked_cells(path) -> None:
    assert path.stat().st_size < 3_000_000
    notebook = json.loads(path.read_text())
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    checked = [cell for cell in code_cells if "nbval-check-output" in cell["metadata"].get("tags", [])]
    assert len(checked) >= 2
    assert not any("NBVAL" in "".join(cell["source"]) for cell in code_cells), "test markers are tags, not source"
    assert all(cell["outputs"] for cell in checked), "checked cells need committed outputs to compare against"
    outputs = [output for cell in code_cells for output in cell["outputs"]]
    assert any("image/png" in output.get("data", {}) for output in outputs), "every notebook shows a figure"
    text = json.dumps(outputs)
    assert "data:video" not in text and "video/mp4" not in text, "videos are linked from outputs/, never embedded"
    assert not any(output.get("output_type") == "error" for output in outputs)
    warnings = [output for output in outputs if output.get("name") == "stderr"]
    assert not warnings, f"the executing machine's warnings reached the reader: {warnings[0]['text'][:1]}"
    results = ["".join(output["data"].get("text/plain", "")) for output in outputs if "data" in output]
    walls = [result for result in results if len(result) > 500]
    assert not walls, f"a cell's value printed as a wall of text (end the cell with ; or a name): {walls[0][:80]}"


def test_a_notebook_trains_a_short_live_run_unless_the_full_recipe_is_asked_for(monkeypatch) -> None:
    monkeypatch.delenv("VAE_SMOKE", raising=False)
    assert notebook_config("2d", full_recipe=True) == RECIPES["2d"]
    assert notebook_run_dir("2d", full_recipe=True).name == "notebook_2d"
    live = notebook_config("2d")
    assert live == replace(RECIPES["2d"], **LIVE_SETTINGS)
    assert live.train_subset // live.batch_size * live.epochs == 600  # steps: a few minutes on a laptop CPU
    assert notebook_run_dir("2d").name == "live_notebook_2d"


def test_smoke_mode_shrinks_training_and_uses_its_own_run_folder(monkeypatch) -> None:
    monkeypatch.setenv("VAE_SMOKE", "1")
    for full_recipe in (False, True):
        assert notebook_config("8d", full_recipe) == replace(RECIPES["8d"], **SMOKE_SETTINGS)
        assert notebook_run_dir("8d", full_recipe).name == "smoke_notebook_8d"
    assert notebook_config("8d").train_subset == 2048 and notebook_config("8d").latent_dim == 8
