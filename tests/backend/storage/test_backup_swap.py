"""A restore killed at any point of its swap (SIGKILL, in a child process) leaves, once start-up has
recovered, either all of the previous data or all of the restored data: never a mix, never leftovers."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from backend.core.config import Settings
from backend.core.errors import AppError, ErrorCode
from backend.storage.backup import apply_staged, check_and_stage, recover_interrupted_restore, write_backup
from backend.storage.backup_format import JOURNAL_NAME
from tests.backups import leftovers, populate, settings_in, state

CHILD = """
import sys, time
from pathlib import Path
from backend.core.config import Settings
from backend.storage import backup_swap
from backend.storage.backup import apply_staged, check_and_stage, recover_interrupted_restore

data, models, archive, stop_at = sys.argv[1:]
settings = Settings(data_dir=data, models_dir=models)

def hook(step):
    print(step, flush=True)
    if step == stop_at:
        time.sleep(600)

backup_swap.step_hook = hook
if archive == "-":
    recover_interrupted_restore(settings)
else:
    apply_staged(check_and_stage(Path(archive), settings), settings)
print("end", flush=True)
"""


def run_child(settings: Settings, archive: str, stop_at: str) -> list[str]:
    """Run a restore (or, with archive '-', a recovery) in a child; SIGKILL it right after `stop_at`.
    Returns the steps it reported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDLESS_")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(settings.data_dir), str(settings.model_folder),
                              archive, stop_at], stdout=subprocess.PIPE, env=env, text=True)
    assert child.stdout is not None
    steps = []
    try:
        for line in child.stdout:
            steps.append(line.strip())
            if steps[-1] == stop_at:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.wait(30)
    if stop_at != "end":
        assert steps and steps[-1] == stop_at, f"the child never reached {stop_at}: {steps}"
    return steps


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Data A in place, an archive of data B (with a model), the state each leaves, and the steps."""
    root = tmp_path_factory.mktemp("swap")
    a, b = settings_in(root / "live"), settings_in(root / "other")
    asyncio.run(populate(a, tag="a"))
    asyncio.run(populate(b, tag="b", conversations=2, media=4))
    archive = root / "b.tar"
    with archive.open("wb") as out:
        write_backup(out, b, include_models=True)
    pristine = root / "pristine"
    shutil.copytree(root / "live", pristine)
    state_a = state(a)
    steps = run_child(a, str(archive), "end")
    state_b = state(a)
    assert state_b != state_a and leftovers(a) == []
    assert any(row.startswith("INSERT INTO \"conversations\"") and "b chat 1" in row for row in state_b["rows"])
    return {"settings": a, "archive": str(archive), "pristine": pristine, "root": root / "live",
            "a": state_a, "b": state_b, "steps": steps[:-1]}


def reset(world: dict[str, Any]) -> Settings:
    shutil.rmtree(world["root"])
    shutil.copytree(world["pristine"], world["root"])
    settings: Settings = world["settings"]
    assert state(settings) == world["a"]
    return settings


def test_the_swap_reports_its_steps(world: dict[str, Any]) -> None:
    steps = world["steps"]
    assert steps[:2] == ["fixed", "journal"] and steps[-1] == "done"
    ins = [s for s in steps if s.startswith("in:")]
    assert len(ins) == len([s for s in steps if s.startswith("out:")]) >= 5  # db, -wal, -shm, media, model


def test_a_kill_at_any_step_leaves_one_whole_side(world: dict[str, Any]) -> None:
    steps: list[str] = world["steps"]
    last_in = max(i for i, s in enumerate(steps) if s.startswith("in:"))
    outcomes = {}
    for index, step in enumerate(steps):
        settings = reset(world)
        run_child(settings, world["archive"], step)
        assert (settings.data_dir / JOURNAL_NAME).exists() == (step not in ("fixed", "done"))
        recover_interrupted_restore(settings)  # what the next start does first
        after = state(settings)
        expected = "b" if index >= last_in else "a"
        assert after == world[expected], f"killed after {step}: not the whole of {expected}"
        assert leftovers(settings) == [], f"killed after {step}"
        outcomes[step] = expected
    assert set(outcomes.values()) == {"a", "b"}


def test_a_recovery_killed_halfway_is_finished_by_the_next(world: dict[str, Any]) -> None:
    steps: list[str] = world["steps"]
    middle = [s for s in steps if s.startswith("in:")][2]  # the database and media are in, the model not
    settings = reset(world)
    run_child(settings, world["archive"], middle)
    undone = run_child(settings, "-", "back:3")  # rolling back: killed after putting the media back
    assert undone[-1] == "back:3"
    recover_interrupted_restore(settings)
    assert state(settings) == world["a"] and leftovers(settings) == []


def test_a_failure_while_swapping_puts_everything_back(world: dict[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings = reset(world)
    staged = check_and_stage(Path(world["archive"]), settings)
    from backend.storage import backup_swap

    def fail(step: str) -> None:
        if step == "in:3":
            raise OSError("the disk went away")

    monkeypatch.setattr(backup_swap, "step_hook", fail)
    with pytest.raises(OSError, match="disk went away"):
        apply_staged(staged, settings)
    assert state(settings) == world["a"] and leftovers(settings) == []


def test_without_a_journal_leftovers_are_removed_and_nothing_else(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    asyncio.run(populate(settings, tag="c"))
    before = state(settings)
    for folder in (settings.data_dir / ".restore-staging" / "media", settings.model_folder / ".restore-old"):
        folder.mkdir(parents=True)
        (folder / "left.bin").write_bytes(b"x")
    assert recover_interrupted_restore(settings) is None
    assert state(settings) == before and leftovers(settings) == []


def test_a_restore_refuses_to_start_over_an_unfinished_one(world: dict[str, Any]) -> None:
    settings = reset(world)
    run_child(settings, world["archive"], "out:1")
    archive = io.BytesIO(Path(world["archive"]).read_bytes())
    with pytest.raises(AppError, match="cut off") as caught:
        # staging would remove the unfinished restore's staged files: it is refused before that
        check_and_stage(archive, settings)
    assert caught.value.code == ErrorCode.CONFLICT
    recover_interrupted_restore(settings)
    assert state(settings) == world["a"]
