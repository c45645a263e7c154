"""Progress bars in executed notebooks: the text a reader without widgets sees is made the bar's final state.

A notebook's tqdm bar is a widget (an HBox of a label, a progress bar and a postfix). Jupyter saves, beside the
output, a text version of it taken when the bar was first displayed (`epochs 1-2:   0%|  | 0/600`), and the
widget's final state in the notebook's metadata. JupyterLab draws the widget from that state; viewers that draw no
widgets (GitHub, nbviewer, a terminal) show the text, which says training never began. `settle_progress_bars`
rewrites each such text from the saved final state: run it after executing the notebooks for commit, before
`python -m vae_lib student-notebooks` copies them.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from vae_lib.core.files import replaced_atomically
from vae_lib.course.student import notebook_text

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
BAR_WIDTH = 10  # tqdm's bar in a notebook's text fallback


def progress_bar_text(widgets: dict, model_id: str) -> str | None:
    """Return the text of the tqdm bar saved as widget `model_id` in its final state, as tqdm prints it
    (`epochs 1-2: 100%|██████████| 600/600 [...]`); None when the widget is not such a bar or its state is missing."""
    container = widgets.get(model_id, {})
    if container.get("model_name") != "HBoxModel":
        return None
    children = [widgets.get(str(child).removeprefix("IPY_MODEL_"), {}) for child in container["state"]["children"]]
    if [child.get("model_name") for child in children] != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    label, bar, postfix = (child["state"] for child in children)
    maximum = bar.get("max") or 0
    filled = round(BAR_WIDTH * bar.get("value", 0) / maximum) if maximum else 0
    drawn = "█" * min(filled, BAR_WIDTH) + " " * (BAR_WIDTH - min(filled, BAR_WIDTH))

    def plain(value: str) -> str:
        return html.unescape(value or "").replace("\u2007", " ")

    return f"{plain(label.get('value'))}|{drawn}|{plain(postfix.get('value'))}"


def settle_progress_bars(notebook: dict) -> int:
    """Rewrite, in place, the text of every progress-bar output of `notebook` from its saved final widget state;
    return how many texts changed."""
    widgets = notebook.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    changed = 0
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW not in data or "text/plain" not in data:
                continue
            text = progress_bar_text(widgets, data[WIDGET_VIEW]["model_id"])
            if text is not None and "".join(data["text/plain"]) != text:
                data["text/plain"] = [text]
                changed += 1
    return changed


def settle_notebook_files(paths: list[Path]) -> dict[Path, int]:
    """Settle the progress bars of each notebook file, rewriting only those that change; return the count per file.

    Every file is read and settled before any is written, so a file that is not a notebook stops the command with
    nothing written; each write goes through a temporary file, so a full disk leaves the notebook as it was.
    """
    settled = {}
    for path in paths:
        try:
            notebook = json.loads(path.read_text())
            settled[path] = (notebook, settle_progress_bars(notebook))
        except (json.JSONDecodeError, TypeError, AttributeError, KeyError) as error:
            raise ValueError(
                f"{path} is not a notebook ({type(error).__name__}: {error}); nothing was written"
            ) from error
    for path, (notebook, changed) in settled.items():
        if changed:
            with replaced_atomically(path) as temporary:
                temporary.write_text(notebook_text(notebook))
    return {path: changed for path, (_, changed) in settled.items()}
