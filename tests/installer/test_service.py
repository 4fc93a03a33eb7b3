"""Boot entries: the crontab edit is pure; the manager runs a fake crontab or a tmp unit dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from installer import BootEntryError
from installer.donor.service import BootEntry, BootManager, add_cron_line, remove_cron_line


def test_cron_text_edits() -> None:
    entry = BootEntry(kind="cron", script=Path("/opt/seattle/start.sh"))
    other = "0 * * * * backup\n"
    added = add_cron_line(other, entry.cron_line)
    assert added == other + entry.cron_line + "\n"
    assert add_cron_line(added, entry.cron_line) == added
    assert remove_cron_line(added, entry.tag) == other
    assert remove_cron_line(entry.cron_line + "\n", entry.tag) == ""


def test_fake_crontab_add_remove(tmp_path: Path, fake_crontab: tuple[Path, Path],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    command, table = fake_crontab
    monkeypatch.setenv("FAKE_CRONTAB_FILE", str(table))
    manager = BootManager.from_env(crontab_cmd=str(command))
    entry = manager.choose("cron", tmp_path / "p" / "start.sh")
    assert entry.kind == "cron"
    assert manager.read_crontab() == ""  # "no crontab for ..." is an empty table
    table.write_text("@daily something-else\n")
    assert not manager.is_present(entry)
    manager.add(entry)
    manager.add(entry)
    assert manager.is_present(entry)
    assert table.read_text().count("seattle-p2p") == 1
    manager.remove(entry)
    assert not manager.is_present(entry)
    assert table.read_text() == "@daily something-else\n"


def test_failing_crontab_is_an_error(tmp_path: Path) -> None:
    manager = BootManager(crontab_cmd=("/bin/false",))
    with pytest.raises(BootEntryError):
        manager.read_crontab()


def test_missing_crontab_means_no_entry(tmp_path: Path) -> None:
    manager = BootManager(crontab_cmd=(str(tmp_path / "no-such-crontab"),))
    entry = manager.choose("auto", tmp_path / "start.sh")
    if entry.kind == "none":
        assert "start.sh" in entry.note
        assert "no start-at-boot entry" in entry.describe()


def test_systemd_unit_in_given_dir(tmp_path: Path) -> None:
    manager = BootManager(systemd_dir=tmp_path / "units")
    entry = manager.choose("systemd", tmp_path / "p" / "start.sh")
    assert entry.kind == "systemd"
    manager.add(entry)
    unit = tmp_path / "units" / entry.unit_name
    assert "ExecStart=/bin/sh" in unit.read_text() and manager.is_present(entry)
    assert (tmp_path / "units" / "default.target.wants" / entry.unit_name).resolve() == unit
    manager.remove(entry)
    assert not manager.is_present(entry)
    assert not any((tmp_path / "units").rglob("*.service"))


def test_no_service() -> None:
    entry = BootManager().choose("none", Path("/x/start.sh"))
    assert entry.kind == "none" and "--no-service" in entry.describe()
