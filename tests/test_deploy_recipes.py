"""The deploy recipes agree with the Procfile and with one another, so they cannot drift apart:
web, worker and beat run the same command line everywhere (only where it listens and how many
processes it runs may differ), each waits for the migrate step, the metrics variables and
ports match, and the probes name paths the web app answers. The deploy smoke test
(tests/e2e/test_deploy_smoke.py) starts the Procfile's command lines for real."""

from __future__ import annotations

import pytest

from scheduler.web.health import PROBES
from tests.support import recipes
from tests.support.recipes import METRICS_VARIABLES, SERVICES, Command

#: Options whose value is the deployment's choice: where the server listens, how many
#: processes or jobs at once. Their presence still has to agree.
PER_DEPLOYMENT = ("--bind", "--workers", "--concurrency")


def shape(command: Command) -> list[str]:
    """The command line with the deployment's own values blanked, and gunicorn's worker
    count left out (gunicorn reads it from ``--workers`` or WEB_CONCURRENCY alike)."""
    argv = [command.program, *command.argv[1:]]
    if command.program == "gunicorn" and "--workers" in argv:
        at = argv.index("--workers")
        del argv[at : at + 2]
    return [
        "<deployment's own>" if i and argv[i - 1] in PER_DEPLOYMENT else word
        for i, word in enumerate(argv)
    ]


def recipes_of(service: str) -> list[Command]:
    return [
        recipes.systemd_unit(service).command,
        recipes.kubernetes(service),
        recipes.compose(service),
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_every_recipe_runs_the_procfiles_command_line(service):
    expected = shape(recipes.procfile()[service])
    for command in recipes_of(service):
        assert shape(command) == expected, (
            f"{command.source} runs {' '.join(command.argv)!r}; the Procfile's {service} is "
            f"{recipes.procfile_lines()[service]!r}"
        )


def test_the_procfile_execs_each_server():
    # The shell hands its process over: the signal honcho (or a test) sends reaches the server.
    for name, line in recipes.procfile_lines().items():
        assert line.startswith("exec "), f"Procfile {name}: {line!r}"
    assert set(recipes.procfile()) == set(SERVICES)


def test_gunicorn_is_told_its_worker_count_everywhere():
    for command in [recipes.procfile()["web"], *recipes_of("web")]:
        assert command.option("--workers") or "WEB_CONCURRENCY" in command.env, command.source


def test_one_migrate_command_and_every_service_waits_for_it():
    migrate = [recipes.systemd_unit("migrate").command, recipes.kubernetes("migrate")]
    migrate.append(recipes.compose("migrate"))
    assert {tuple(shape(c)) for c in migrate} == {("python", "manage.py", "migrate", "--noinput")}
    compose = recipes.compose_file()["services"]
    for service in SERVICES:
        unit = recipes.systemd_unit(service)
        for key in ("Requires", "After"):
            assert "jobs-platform-migrate.service" in " ".join(unit.values("Unit", key)), (
                f"{unit.source}: {key}= does not name jobs-platform-migrate.service"
            )
        condition = compose[service]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", service


def test_the_image_collects_the_static_files_whitenoise_serves():
    assert recipes.image_step("collectstatic")[:2] == ("python", "manage.py")
    assert "STATIC_ROOT" in recipes.dockerfile().cmd.env


@pytest.mark.parametrize("service", SERVICES)
def test_the_metrics_variables_agree(service):
    found = {c.source: sorted(METRICS_VARIABLES & c.env.keys()) for c in recipes_of(service)}
    assert len({tuple(names) for names in found.values()}) == 1, found
    names = recipes.metrics_variables(service)
    # The web app serves /metrics itself; worker and beat need an exporter port; the
    # processes of web and of the worker's pool count into one directory each.
    assert ("METRICS_PORT" in names) == (service != "web"), found
    assert ("PROMETHEUS_MULTIPROC_DIR" in names) == (service != "beat"), found


def image_port() -> int:
    bind = recipes.dockerfile().cmd.option("--bind")
    assert bind, "the image's command names no --bind"
    return int(bind.rsplit(":", 1)[1])


def test_ports_agree():
    port = image_port()
    assert port in recipes.dockerfile().exposed
    assert recipes.kubernetes_ports("web")["http"] == port
    assert int(recipes.kubernetes_annotations("web")["prometheus.io/port"]) == port
    [mapping] = recipes.compose_file()["services"]["web"]["ports"]
    assert int(mapping.rsplit(":", 1)[1]) == port

    for service in ("worker", "beat"):
        metrics_port = int(recipes.kubernetes(service).env["METRICS_PORT"])
        annotated = int(recipes.kubernetes_annotations(service)["prometheus.io/port"])
        assert annotated == recipes.kubernetes_ports(service)["metrics"] == metrics_port, service
    # One machine under systemd: worker and beat cannot share the port.
    systemd = {s: recipes.systemd_unit(s).command.env["METRICS_PORT"] for s in ("worker", "beat")}
    assert systemd["worker"] != systemd["beat"], systemd


def test_the_probes_name_paths_the_web_app_answers():
    container = recipes.kubernetes_container("web")
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in PROBES, probe
    healthcheck = " ".join(recipes.compose_file()["services"]["web"]["healthcheck"]["test"])
    assert any(f"127.0.0.1:{image_port()}{path}'" in healthcheck for path in PROBES), healthcheck
