"""The Dockerfile copies every package the project ships and nothing .dockerignore hides."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PYPROJECT = REPO / "pyproject.toml"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def copied_sources() -> list[str]:
    """Sources of the COPY instructions that read the build context (not another stage)."""
    sources = []
    for keyword, rest in instructions():
        if keyword == "COPY" and "--from=" not in rest:
            words = [w for w in rest.split() if not w.startswith("--")]
            sources.extend(words[:-1])
    return sources


def ignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
        or fnmatch.fnmatch(Path(prefix).name, pattern.removeprefix("**/"))
        for pattern in patterns
        for prefix in prefixes
    )


def test_every_shipped_package_is_copied_into_the_image() -> None:
    include = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["packages"]["find"][
        "include"
    ]
    packages = {
        path.name
        for path in REPO.iterdir()
        if (path / "__init__.py").is_file()
        and any(fnmatch.fnmatch(path.name, pattern) for pattern in include)
    }
    assert packages >= {"ridestream", "producer", "predictor", "monitor", "retrainer"}
    assert packages <= set(copied_sources())


def test_copied_sources_exist_and_are_not_dockerignored() -> None:
    sources = copied_sources()
    assert sources
    assert [s for s in sources if not (REPO / s).exists()] == []
    assert [s for s in sources if ignored(s)] == []


def test_dockerignore_keeps_tests_data_and_git_out_of_the_context() -> None:
    assert all(ignored(path) for path in (".git", "tests", "data", ".venv", "x/__pycache__"))


def test_image_is_python_311_slim_runs_as_a_user_and_enters_ridestream() -> None:
    steps = instructions()
    python_image = next(rest for keyword, rest in steps if keyword == "ARG")
    assert python_image.startswith("PYTHON_IMAGE=python:3.11-slim")
    last_stage = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    final = steps[last_stage:]
    assert final[0][1].endswith("AS runtime")
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    entrypoint = [json.loads(rest) for keyword, rest in final if keyword == "ENTRYPOINT"]
    assert entrypoint == [["ridestream"]]


def test_mlflow_target_adds_the_postgresql_driver_and_runs_as_a_user() -> None:
    steps = instructions()
    start = steps.index(("FROM", "base AS mlflow"))
    end = next(i for i in range(start + 1, len(steps)) if steps[i][0] == "FROM")
    stage = steps[start:end]
    assert any(k == "RUN" and "psycopg2-binary" in rest for k, rest in stage)
    assert [rest for k, rest in stage if k == "USER"] == ["ridestream"]
    assert ("ENTRYPOINT", '["mlflow"]') in stage
