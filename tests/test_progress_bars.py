"""Progress bars in executed notebooks: the saved text is the bar's final state, for viewers without widgets."""

import copy
import json
from pathlib import Path

import pytest

from vae_lib.core.settings import REPO_ROOT
from vae_lib.course.progress_bars import WIDGET_STATE, WIDGET_VIEW, progress_bar_text, settle_progress_bars
from vae_lib.tools.cli import main

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb")) + sorted(
    (REPO_ROOT / "notebooks/student").glob("*.ipynb")
)


def widget(name: str, **state: object) -> dict:
    return {"model_module": "@jupyter-widgets/controls", "model_name": name, "state": state}


def notebook_with_a_bar(value: float, maximum: float) -> dict:
    """A notebook as nbconvert saves one whose cell ran a tqdm bar to `value` of `maximum`, and a slider."""
    widgets = {
        "bar": widget("HBoxModel", children=["IPY_MODEL_label", "IPY_MODEL_progress", "IPY_MODEL_postfix"]),
        "label": widget("HTMLModel", value="epochs\u20071-2:\u2007100%"),
        "progress": widget("FloatProgressModel", value=value, max=maximum, bar_style="success"),
        "postfix": widget("HTMLModel", value="\u2007600/600\u2007[00:42&lt;00:00,\u2007loss=0.1279]"),
        "slider": widget("FloatSliderModel", value=0.5),
    }

    def view(model_id: str, text: str) -> dict:
        data = {WIDGET_VIEW: {"model_id": model_id, "version_major": 2, "version_minor": 0}, "text/plain": [text]}
        return {"output_type": "display_data", "data": data, "metadata": {}}

    outputs = [view("bar", "epochs 1-2:   0%|          | 0/600 [00:00<?, ?it/s]"), view("slider", "FloatSlider(0.5)")]
    return {
        "cells": [{"cell_type": "code", "source": ["trainer.fit(2)"], "outputs": outputs, "metadata": {}}],
        "metadata": {"widgets": {WIDGET_STATE: {"state": widgets, "version_major": 2, "version_minor": 0}}},
    }


def texts(notebook: dict) -> list[str]:
    return ["".join(output["data"]["text/plain"]) for output in notebook["cells"][0]["outputs"]]


def test_a_finished_bar_is_saved_as_tqdm_prints_it_and_other_widgets_are_left_alone() -> None:
    notebook = notebook_with_a_bar(600.0, 600.0)
    assert settle_progress_bars(notebook) == 1
    assert texts(notebook) == ["epochs 1-2: 100%|██████████| 600/600 [00:42<00:00, loss=0.1279]", "FloatSlider(0.5)"]
    assert settle_progress_bars(notebook) == 0  # settling twice changes nothing


def test_a_bar_stopped_part_way_shows_how_far_it_got() -> None:
    notebook = notebook_with_a_bar(180.0, 600.0)  # stopped at 30 %: three of ten cells filled
    settle_progress_bars(notebook)
    assert texts(notebook)[0].split("|")[1] == "███       "


def test_a_bar_whose_state_was_not_saved_keeps_its_text() -> None:
    notebook = notebook_with_a_bar(600.0, 600.0)
    del notebook["metadata"]["widgets"]
    before = copy.deepcopy(notebook)
    assert settle_progress_bars(notebook) == 0 and notebook == before
    assert progress_bar_text({}, "bar") is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_the_committed_notebooks_progress_bars_show_their_final_state(path: Path) -> None:
    notebook = json.loads(path.read_text())
    assert settle_progress_bars(notebook) == 0, (
        f"{path.name} shows a progress bar's first state (0 %) to viewers without widgets: "
        "run `python -m vae_lib settle-progress-bars`, then `python -m vae_lib student-notebooks`"
    )


def test_the_command_rewrites_only_what_changes_and_refuses_a_file_that_is_no_notebook(tmp_path, capsys) -> None:
    from vae_lib.course.student import notebook_text

    stale, broken = tmp_path / "stale.ipynb", tmp_path / "broken.ipynb"
    stale.write_text(notebook_text(notebook_with_a_bar(600.0, 600.0)))
    assert main(["settle-progress-bars", str(stale)]) == 0
    assert "1 progress bar text set to the final state" in capsys.readouterr().out
    assert texts(json.loads(stale.read_text()))[0].startswith("epochs 1-2: 100%|██████████|")

    broken.write_text('{"cells": [')
    assert main(["settle-progress-bars", str(broken)]) == 2
    assert "is not a notebook" in capsys.readouterr().err
    assert broken.read_text() == '{"cells": ['


def test_no_file_is_written_when_one_of_them_is_no_notebook(tmp_path, capsys) -> None:
    from vae_lib.course.student import notebook_text

    stale, odd = tmp_path / "stale.ipynb", tmp_path / "odd.ipynb"
    stale.write_text(notebook_text(notebook_with_a_bar(600.0, 600.0)))
    before = stale.read_text()
    for content in ('{"cells": [', '{"cells": 5}', "[]"):  # invalid JSON, and JSON that is not a notebook
        odd.write_text(content)
        assert main(["settle-progress-bars", str(stale), str(odd)]) == 2
        assert "odd.ipynb is not a notebook" in capsys.readouterr().err
        assert stale.read_text() == before and odd.read_text() == content
    assert sorted(path.name for path in tmp_path.iterdir()) == ["odd.ipynb", "stale.ipynb"]  # no temporary left
