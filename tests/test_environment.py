"""The ways to install (pip with pyproject.toml or its lock, conda with environment.yml) must agree, and CI
must run the test command README.md gives."""

import re
import tomllib

from vae_lib.core.settings import REPO_ROOT


def test_environment_yml_pip_list_equals_pyproject_dependencies() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    dependencies = project["dependencies"] + project["optional-dependencies"]["test"]
    environment = (REPO_ROOT / "environment.yml").read_text()
    pip_section = environment.split("- pip:")[1]
    pip_list = re.findall(r"^\s+- (\S+)\s*$", pip_section, flags=re.MULTILINE)
    assert sorted(pip_list) == sorted(dependencies)
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
