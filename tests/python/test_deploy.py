"""The deployment files: the CloudFormation template passes cfn-lint with no
finding at all, and the Dockerfile is the one the README describes
(multi-stage, non-root, health check on /readyz, the same build command).
No Docker engine is needed: nothing here builds or pulls an image."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "deploy" / "switchboard.yaml"
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
README = REPO_ROOT / "README.md"


def test_template_passes_cfn_lint_without_any_finding():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    assert cfn_lint.is_file(), (
        f"cfn-lint is not installed in {Path(sys.executable).parent}: "
        "pip install -r tests/python/requirements.txt (tests/run does)"
    )
    # Exit status: 0 clean; errors, warnings and informational findings all fail.
    result = subprocess.run(
        [str(cfn_lint), "--format", "parseable", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_catches_a_broken_template(tmp_path):
    """The lint really runs: a table without its key schema is an error."""
    broken = TEMPLATE.read_text().replace(
        "      KeySchema:\n        - {AttributeName: id, KeyType: HASH}\n", "", 1
    )
    assert broken != TEMPLATE.read_text()
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(cfn_lint), str(path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0 and "KeySchema" in result.stdout, result.stdout


def _stages(text: str) -> list[list[str]]:
    stages: list[list[str]] = []
    lines = re.sub(r"\\\n\s*", " ", text).splitlines()
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_non_root_with_a_readiness_check():
    stages = _stages(DOCKERFILE.read_text())
    assert len(stages) >= 2, "a build stage and a runtime stage"
    runtime = stages[-1]
    assert "distroless" in runtime[0], runtime[0]
    users = [l for l in runtime if l.upper().startswith("USER ")]
    assert users and not users[-1].split()[1].startswith(("root", "0")), users
    checks = [l for l in runtime if l.upper().startswith("HEALTHCHECK ")]
    assert len(checks) == 1 and "/readyz" in checks[0], checks
    # The runtime image has no shell: the check runs the binary itself.
    assert '"/usr/local/bin/switchboard", "health"' in checks[0], checks[0]
    copies = [l for l in runtime if l.upper().startswith("COPY ")]
    assert copies and all("--from=build" in c for c in copies), copies


def test_readme_gives_the_dockerfiles_build_commands():
    dockerfile = DOCKERFILE.read_text()
    readme = README.read_text()
    build = re.search(r"cargo build --release[^\n&\\]*", dockerfile)
    assert build, "the Dockerfile builds with cargo build --release"
    assert build.group(0).strip() in readme, build.group(0)
    docker = re.search(r"docker build -f deploy/Dockerfile [^\n(]*", dockerfile)
    assert docker, "the Dockerfile says how to build it"
    assert docker.group(0).strip() in readme, docker.group(0)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def test_the_build_image_is_new_enough_for_the_workspace():
    cargo = (REPO_ROOT / "Cargo.toml").read_text()
    needed = re.search(r'^rust-version = "([0-9.]+)"', cargo, re.M)
    assert needed, "the workspace names its rust-version"
    image = re.search(r"^FROM rust:([0-9.]+)-", DOCKERFILE.read_text(), re.M)
    assert image, "the build stage is a rust image with a version tag"
    assert _version(image.group(1)) >= _version(needed.group(1))[: len(_version(image.group(1)))], (
        image.group(1),
        needed.group(1),
    )
