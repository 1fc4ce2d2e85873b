from __future__ import annotations

from django.core.management import call_command

from jobs_catalog.registry import registry

BUILTINS = {
    "builtin.http_request",
    "builtin.file_cleanup",
    "builtin.bulk_rename",
    "builtin.management_command",
    "builtin.download_files",
    "builtin.archive_directory",
    "builtin.extract_archive",
}


def test_builtins_load_without_problems():
    assert {job.name for job in registry} >= BUILTINS
    assert not [p for p in registry.problems if p.module.startswith("jobs_catalog.builtin")]
    for name in BUILTINS:
        assert registry.get(name).source == "built-in"


def test_every_builtin_describes_itself(capsys):
    for name in sorted(BUILTINS):
        call_command("jobs", "describe", name)
        out = capsys.readouterr().out
        assert out.startswith(f"{name}: ") and "(no description)" not in out
        assert "parameters:" in out
