"""The deploy recipes read as data: each service's command line (argv) and the environment the
recipe sets for it, from the Procfile, the Dockerfile, the systemd units, the Kubernetes
manifests and the compose file. The recipes' tests hold them to one another with this, and
the deploy smoke test starts what the Procfile says."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.processes import ROOT

DEPLOY = ROOT / "deploy"
#: The long-running services, by the names the Procfile gives them.
SERVICES = ("web", "worker", "beat")
#: The metrics variables (README, "Metrics") a recipe sets per service.
METRICS_VARIABLES = frozenset({"METRICS_PORT", "METRICS_ADDR", "PROMETHEUS_MULTIPROC_DIR"})


@dataclass(frozen=True)
class Command:
    """A service's command line as one recipe writes it, and the variables it sets for it."""

    source: str  # where it is written, for messages
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def program(self) -> str:
        """The program's name, wherever the recipe installs it."""
        return Path(self.argv[0]).name

    def option(self, name: str) -> str | None:
        """The value given to ``name`` (``--bind 127.0.0.1:8000``), None when absent."""
        if name in self.argv[:-1]:
            return self.argv[self.argv.index(name) + 1]
        return None


# --- Procfile -----------------------------------------------------------------------------
def procfile_lines(path: Path = ROOT / "Procfile") -> dict[str, str]:
    """Each process's command line as written (for ``sh -c``, as honcho runs it)."""
    lines = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            lines[name.strip()] = command.strip()
    return lines


def procfile() -> dict[str, Command]:
    commands = {}
    for name, line in procfile_lines().items():
        argv = shlex.split(line)
        if argv[0] == "exec":  # the shell hands its process over to the server
            argv = argv[1:]
        commands[name] = Command("Procfile", tuple(argv))
    return commands


# --- Dockerfile ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Image:
    cmd: Command  # the default command, with the ENV the image sets
    exposed: tuple[int, ...]
    run_steps: tuple[str, ...]  # each RUN instruction, continuation lines joined


def _instructions(path: Path) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def dockerfile(path: Path = DEPLOY / "Dockerfile") -> Image:
    env: dict[str, str] = {}
    cmd: list[str] = []
    exposed: list[int] = []
    runs: list[str] = []
    for keyword, rest in _instructions(path):
        if keyword == "ENV":
            env.update(_assignments(shlex.split(rest)))
        elif keyword == "CMD":
            cmd = json.loads(rest)  # the exec form: no shell between the signal and the server
        elif keyword == "EXPOSE":
            exposed += [int(port) for port in rest.split()]
        elif keyword == "RUN":
            runs.append(rest)
    return Image(Command("deploy/Dockerfile CMD", tuple(cmd), env), tuple(exposed), tuple(runs))


def image_step(command: str) -> tuple[str, ...]:
    """The argv of the image's build step running ``manage.py <command>`` (variables set for
    the build alone are left out)."""
    for step in dockerfile().run_steps:
        for part in step.split("&&"):
            argv = [word for word in shlex.split(part) if not re.match(r"^[A-Z_]+=", word)]
            if argv[1:3] == ["manage.py", command]:
                return tuple(argv)
    raise AssertionError(f"deploy/Dockerfile runs no manage.py {command}")


def _assignments(words: list[str]) -> dict[str, str]:
    return dict(word.split("=", 1) for word in words)


# --- systemd ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    source: str
    sections: dict[str, dict[str, list[str]]]  # section -> key -> every value given

    def values(self, section: str, key: str) -> list[str]:
        return self.sections.get(section, {}).get(key, [])

    @property
    def command(self) -> Command:
        [exec_start] = self.values("Service", "ExecStart")
        env: dict[str, str] = {}
        for line in self.values("Service", "Environment"):
            env.update(_assignments(shlex.split(line)))
        return Command(self.source, tuple(shlex.split(exec_start)), env)


def systemd_unit(service: str) -> Unit:
    path = DEPLOY / "systemd" / f"jobs-platform-{service}.service"
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return Unit(str(path.relative_to(ROOT)), sections)


def metrics_variables(service: str) -> set[str]:
    """The metrics variables the recipes set for ``service`` (the systemd unit's; the recipes'
    tests hold the others to it)."""
    return set(METRICS_VARIABLES & systemd_unit(service).command.env.keys())


# --- Kubernetes ---------------------------------------------------------------------------
def kubernetes_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def kubernetes_workload(service: str) -> dict[str, Any]:
    """The Deployment (or, for ``migrate``, the Job) running ``service``."""
    name = f"jobs-platform-{service}"
    for obj in kubernetes_objects():
        if obj["kind"] in ("Deployment", "Job") and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"deploy/k8s has no Deployment or Job named {name}")


def kubernetes_container(service: str) -> dict[str, Any]:
    [container] = kubernetes_workload(service)["spec"]["template"]["spec"]["containers"]
    return container


def kubernetes_ports(service: str) -> dict[str, int]:
    """The container's ports by name."""
    return {p["name"]: p["containerPort"] for p in kubernetes_container(service)["ports"]}


def kubernetes_annotations(service: str) -> dict[str, str]:
    """The pods' annotations (``prometheus.io/*``)."""
    return kubernetes_workload(service)["spec"]["template"]["metadata"].get("annotations", {})


def kubernetes(service: str) -> Command:
    """The container's command (the image's CMD when it sets none) and its environment (the
    image's ENV, then the container's ``env``)."""
    container = kubernetes_container(service)
    image = dockerfile().cmd
    env = {**image.env, **{v["name"]: str(v["value"]) for v in container.get("env", [])}}
    argv = container.get("command") or image.argv
    return Command(f"deploy/k8s ({service})", tuple(argv), env)


# --- compose ------------------------------------------------------------------------------
def compose_file() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def compose(service: str) -> Command:
    """As :func:`kubernetes`, for a compose service (anchors and merge keys resolved)."""
    spec = compose_file()["services"][service]
    image = dockerfile().cmd
    env = {**image.env, **{k: str(v) for k, v in (spec.get("environment") or {}).items()}}
    argv = spec.get("command") or image.argv
    return Command(f"deploy/compose.yaml ({service})", tuple(argv), env)
