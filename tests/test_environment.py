"""The ways to install (pip with pyproject.toml or its lock, conda with environment.yml, Binder and JupyterHub with
binder/) must agree, each must install vae_lib, the repository must stay small enough to pull into a hub, and CI
must run the test command README.md gives."""

import os
import re
import shutil
import subprocess
import tomllib

import pytest

from vae_lib.core.settings import REPO_ROOT

BINDER_DIR = REPO_ROOT / "binder"
# nbgitpuller's advice is a repository under 100 MB; a quarter of headroom keeps a term's added files from creeping
# up to it (a shallow clone downloads about the tracked files' size, compressed a little).
TRACKED_FILES_LIMIT_BYTES = 75_000_000


def requirement_lines(text: str) -> list[str]:
    """Return a requirements file's requirement lines, without comments, blank lines or `# via` annotations."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith((" ", "#"))]


def test_environment_yml_pip_list_equals_pyproject_dependencies() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    dependencies = project["dependencies"] + project["optional-dependencies"]["test"]
    environment = (REPO_ROOT / "environment.yml").read_text()
    pip_section = environment.split("- pip:")[1]
    pip_list = re.findall(r"^\s+- (.+?)\s*$", pip_section, flags=re.MULTILINE)
    assert pip_list[-1] == "-e .", "conda installs vae_lib itself from the repository's folder"
    assert sorted(pip_list[:-1]) == sorted(dependencies)
    for name in ["torch", "torchvision", "jupyterlab", "ipywidgets", "matplotlib", "numpy", "nbval", "imageio-ffmpeg"]:
        assert any(re.match(rf"{name}\b", requirement) for requirement in dependencies), name


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    test_command = re.search(r"<!-- test-command -->\s*```bash\n(.+?)\n```", readme, flags=re.DOTALL).group(1).strip()
    ci_commands = [
        line.strip()
        for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert ci_commands == [test_command]


def test_the_lock_pins_every_dependency_exactly_and_satisfies_pyproject() -> None:
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    lock = (REPO_ROOT / "requirements.lock").read_text()
    pinned = {}
    for line in lock.splitlines():
        if line and not line.startswith((" ", "#")):
            requirement = Requirement(line)
            assert [spec.operator for spec in requirement.specifier] == ["=="], line
            pinned.setdefault(requirement.name, []).append(next(iter(requirement.specifier)).version)
    for text in project["dependencies"] + project["optional-dependencies"]["test"]:
        requirement = Requirement(text)
        assert requirement.name in pinned, f"{requirement.name} is missing from requirements.lock: run make lock"
        assert all(requirement.specifier.contains(version) for version in pinned[requirement.name]), text
    assert pinned["torch"] == ["2.14.1"] and pinned["torchvision"] == ["0.29.1"]


def test_binder_installs_exactly_the_lock_and_then_vae_lib() -> None:
    # repo2docker reads only binder/ when it exists: its requirements are the lock's pins, its postBuild adds vae_lib.
    binder_requirements = requirement_lines((BINDER_DIR / "requirements.txt").read_text())
    assert binder_requirements == requirement_lines((REPO_ROOT / "requirements.lock").read_text()), "run make lock"
    post_build = BINDER_DIR / "postBuild"
    lines = post_build.read_text().splitlines()
    assert os.access(post_build, os.X_OK) and lines[0] == "#!/bin/bash" and "set -euo pipefail" in lines
    install_lines = [line for line in lines if "pip install" in line]
    assert install_lines == ["python -m pip install --no-cache-dir --no-deps -e ."], "vae_lib, the pins untouched"


def test_pyproject_lists_every_package_of_vae_lib() -> None:
    # setuptools installs only the packages listed: one left out is missing from a non-editable install.
    listed = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = {
        ".".join(init.parent.relative_to(REPO_ROOT).parts) for init in (REPO_ROOT / "vae_lib").rglob("__init__.py")
    }
    assert "vae_lib.course.exercises" in found
    assert sorted(listed) == sorted(found)


def test_binder_python_is_the_one_conda_gets_and_pyproject_allows() -> None:
    from packaging.specifiers import SpecifierSet

    version = (BINDER_DIR / "runtime.txt").read_text().strip().removeprefix("python-")
    assert f"python={version}" in (REPO_ROOT / "environment.yml").read_text()
    requires_python = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires_python).contains(f"{version}.0")


def test_the_repository_a_hub_pulls_stays_well_under_nbgitpullers_limit() -> None:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    size = sum((REPO_ROOT / path).stat().st_size for path in tracked if path and (REPO_ROOT / path).is_file())
    assert 1_000_000 < size < TRACKED_FILES_LIMIT_BYTES, f"{size / 1e6:.1f} MB of tracked files"
