"""imagesync as a library: ``imagesync.run`` plans and applies from typed options, without
click, between OCI image layouts (no network), and tells its caller what the command line
prints."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from imagesync import run
from imagesync.errors import PlanRejected
from imagesync.images.shard import Shard
from imagesync.plan.document import Action, Plan
from tests.harness.images import push_image
from tests.harness.layouts import LayoutPusher


class Heard(run.RunListener):
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.plans: list[Plan] = []

    def warning(self, text: str) -> None:
        self.warnings.append(text)

    def planned(self, plan: Plan) -> None:
        self.plans.append(plan)


@pytest.fixture
def options(tmp_path: Path) -> run.RunOptions:
    source = tmp_path / "source"
    push_image(LayoutPusher(source), "demo.example/app", "1.0")
    images = tmp_path / "images.yaml"
    images.write_text('images:\n- source: "demo.example/app:1.0"\n', encoding="utf-8")
    return run.RunOptions(
        str(images), target=f"oci:{tmp_path / 'mirror'}", source_layout=str(source)
    )


def test_plan_then_apply_a_saved_plan_then_nothing_to_do(
    options: run.RunOptions, tmp_path: Path
) -> None:
    made = run.plan(options)
    assert [c.action for c in made.changes] == [Action.CREATE]
    saved = tmp_path / "plan.json"
    made.write(saved)
    report = run.apply(run.read_plan(str(saved), options), options)
    assert not report.failed
    assert [c.action for c in run.plan(options).changes] == [Action.SKIP]


def test_plan_and_apply_shows_the_plan_before_applying_and_times_its_phases(
    options: run.RunOptions,
) -> None:
    heard = Heard()
    with run.phase_timings() as timings:
        report = run.plan_and_apply(options, heard)
    assert not report.failed
    assert [c.action for c in heard.plans[0].changes] == [Action.CREATE]
    assert set(timings) == {"plan", "apply"}


def test_sigterm_interrupts_only_while_inside() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with run.sigterm_interrupts():
        assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_shards_plan_is_applied_only_as_that_shard(options: run.RunOptions) -> None:
    made = run.plan(options)
    assert run.plan_of_shard(made, None) is made
    part = run.plan_of_shard(made, Shard(0, 2))
    assert part.shard == Shard(0, 2)
    with pytest.raises(PlanRejected, match="the plan is shard 0/2, not 1/2"):
        run.plan_of_shard(part, Shard(1, 2))


def test_the_step_summary_is_appended_only_when_actions_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    run.write_step_summary(lambda: pytest.fail("rendered outside Actions"))
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run.write_step_summary(lambda: "# imagesync")
    assert summary.read_text(encoding="utf-8") == "earlier step\n# imagesync\n"
