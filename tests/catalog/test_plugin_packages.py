"""Separate pip-installable packages add jobs through the entry-point group: installed for
real into a directory, then the platform's own command line is run against it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "example-jobs"
BROKEN = ROOT / "tests" / "fixtures" / "broken-plugin-package"


def pip_install(target: Path, *packages: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            *map(str, packages),
        ],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    pip_install(target, EXAMPLE)
    return target


@pytest.fixture(scope="module")
def site_with_broken(tmp_path_factory):
    target = tmp_path_factory.mktemp("site_broken")
    pip_install(target, EXAMPLE, BROKEN)
    return target


def manage(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_installed_package_jobs_are_discovered(site):
    result = manage(site, "jobs", "list", "--json")
    assert result.returncode == 0, result.stderr
    jobs = {j["name"]: j for j in json.loads(result.stdout)}
    assert jobs["example.greet"]["source"] == "package example-jobs 1.0.0 (entry point 'example')"
    assert "example.sign" in jobs and "builtin.http_request" in jobs
    assert "problem:" not in result.stderr


def test_installed_package_job_is_described(site):
    result = manage(site, "jobs", "describe", "example.sign")
    assert result.returncode == 0, result.stderr
    assert "key (str; required; secret)" in result.stdout
    assert "algorithm (choice; default 'sha256'; one of 'sha256', 'sha512')" in result.stdout


def test_installed_package_job_runs(site):
    result = manage(site, "jobs", "run", "example.greet", "-p", "name=Ada", "-p", "times=2")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["Hello, Ada!", "Hello, Ada!"]


def test_invalid_parameters_exit_2_and_name_the_field(site):
    result = manage(site, "jobs", "run", "example.greet", "-p", "name=Ada", "-p", "times=9")
    assert result.returncode == 2
    assert "job 'example.greet': invalid parameters: times:" in result.stderr
    assert result.stdout == ""


def test_a_broken_package_is_reported_and_the_rest_still_works(site_with_broken):
    result = manage(site_with_broken, "jobs", "list", "--json")
    assert result.returncode == 0, result.stderr
    names = {j["name"] for j in json.loads(result.stdout)}
    assert {"example.greet", "example.sign", "builtin.http_request"} <= names
    assert "package other-broken-jobs 0.1.0 (entry point 'broken')" in result.stderr
    assert "No module named 'missing_dependency_of_this_plugin'" in result.stderr
    # The clash names both claimants; example-jobs sorts first, so it keeps the name.
    assert "job name 'example.greet' is claimed twice" in result.stderr
    assert "broken_jobs.clash.greet_again" in result.stderr
    assert "example_jobs.jobs.greet" in result.stderr
    greeted = manage(site_with_broken, "jobs", "run", "example.greet", "-p", "name=Bo")
    assert json.loads(greeted.stdout) == ["Hello, Bo!"]


def test_manage_check_warns_about_broken_plugins(site_with_broken):
    result = manage(site_with_broken, "check")
    assert result.returncode == 0
    assert "jobs_catalog.W001" in result.stderr and "jobs_catalog.W002" in result.stderr
