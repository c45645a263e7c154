"""The two ways to install (pip with pyproject.toml, conda with environment.yml) must agree, and CI
must run the test command README.md gives."""

import re
import tomllib

from vae_lib.settings import REPO_ROOT


def test_environment_yml_pip_list_equals_pyproject_dependencies() -> None:
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
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
