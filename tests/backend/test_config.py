from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.cli import _parser, build_settings
from backend.core.config import Settings


def test_defaults_bind_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("GRIDLESS_HOST", "GRIDLESS_PORT", "GRIDLESS_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8765
    assert settings.token is None


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRIDLESS_PORT", "9000")
    monkeypatch.setenv("GRIDLESS_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("GRIDLESS_CONTEXT_LENGTH", "2048")
    from_env = build_settings(_parser().parse_args(["serve"]))
    assert from_env.port == 9000
    assert from_env.data_dir == (tmp_path / "from-env").resolve()
    assert from_env.context_length == 2048
    flags = build_settings(_parser().parse_args(["serve", "--port", "9100", "--data-dir", str(tmp_path / "f")]))
    assert flags.port == 9100
    assert flags.data_dir == (tmp_path / "f").resolve()
    assert flags.db_path == flags.data_dir / "gridless.db"


@pytest.mark.parametrize("field,value", [("port", 0), ("port", 70000), ("token", "short"),
                                         ("context_length", 10), ("queue_limit", 0)])
def test_bad_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: value})


def test_cli_reports_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    from backend.cli import main

    assert main(["serve", "--port", "0"]) == 2
    assert "port" in capsys.readouterr().err


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from backend import __version__
    from backend.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]
