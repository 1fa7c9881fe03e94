"""A run as a library call: open the stores, plan, apply, and say what happened, from typed
options.

The command line parses its options into a :class:`RunOptions` and makes one call here; a
program (the benchmarks, a wrapper in CI) makes the same calls, with the same behaviour and
no click. What a run has to tell as it goes (warnings, the plan before apply starts) goes to a
:class:`RunListener`; what it ends with is returned: a :class:`Plan` or an
:class:`ApplyReport`, which the caller renders.

Importing this module is as cheap as importing ``cli.py``: the machinery (stores, planner,
applier, and through them the network stack) is imported by the function that runs it, so
``--help``, ``validate`` and ``show`` still load none of it (``tests/test_startup.py``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagesync.apply.applier import Applier
    from imagesync.apply.report import ApplyReport
    from imagesync.images.file import ImagesFile
    from imagesync.images.shard import Shard
    from imagesync.keyring import KeyOptions, Keys
    from imagesync.plan.document import Change, Plan
    from imagesync.plan.planner import PlanOptions
    from imagesync.signing import SigningKey
    from imagesync.stores.connection import ConnectionOptions
    from imagesync.stores.registry.registries import RegistriesConfig
    from imagesync.stores.store import Stores

DEFAULT_IMAGES_FILE = "external-images.yaml"


def _default_connection() -> ConnectionOptions:
    from imagesync.stores.connection import ConnectionOptions

    return ConnectionOptions()


def _default_planning() -> PlanOptions:
    from imagesync.plan.planner import PlanOptions

    return PlanOptions()


def _default_keys() -> KeyOptions:
    from imagesync.keyring import KeyOptions

    return KeyOptions()


@dataclass(frozen=True)
class RunOptions:
    """What a registry-facing run is given.

    ``images_file``: None when none was named; planning then reads
    :data:`DEFAULT_IMAGES_FILE`, and a saved plan is checked against no images file.
    ``target`` (--target) wins over the images file's (or a saved plan's) target;
    ``source_layout`` reads every source from a tree of OCI image layouts; ``shard`` is the part
    of the images file (or of a saved plan) this run does. ``planning`` holds how plan works
    (its keys are filled in from ``keys`` when they are read); apply works with as many images
    at once as plan.
    """

    images_file: str | None = None
    target: str | None = None
    source_layout: str | None = None
    shard: Shard | None = None
    connection: ConnectionOptions = field(default_factory=_default_connection)
    planning: PlanOptions = field(default_factory=_default_planning)
    keys: KeyOptions = field(default_factory=_default_keys)


class RunListener:
    """What a run tells its caller while it goes; this one tells nothing (a program reads the
    plan and the report that come back). The command line prints it."""

    def warning(self, text: str) -> None:
        """A line the user should read: a warning of the images file, an unchecked hmac."""

    def planned(self, plan: Plan) -> None:
        """:func:`plan_and_apply` made ``plan`` and now applies it: a user sees what is about
        to happen before it does."""


def plan(options: RunOptions, listener: RunListener | None = None) -> Plan:
    """The plan of ``options``' images file (its shard), against the sources and the target.

    It reads the public half of a signing key only: the private one is apply's."""
    planning = _prepare(options, listener or RunListener(), private=False)
    return _make_plan(planning)


def plan_and_apply(options: RunOptions, listener: RunListener | None = None) -> ApplyReport:
    """Plan and apply in one go (``sync``, ``apply -i FILE``).

    The applier goes on with the stores that made the plan (their connections, tokens and what
    they learnt), and plan hands it each create as it decides it, so blob copies begin while
    the other entries are still being planned; manifests and tags wait for the whole plan, and
    ``listener`` hears of it first."""
    listener = listener or RunListener()
    planning = _prepare(options, listener, private=True)
    signing_key = planning.keys.signing_key
    with sigterm_interrupts(), _applier(options, planning.stores, signing_key, fresh=True) as run:
        made = _make_plan(planning, run.start)
        listener.planned(made)
        return _apply_with(run, made)


def read_plan(plan_file: str, options: RunOptions, listener: RunListener | None = None) -> Plan:
    """The saved plan ``apply PLAN`` executes: its checksum and hmac (``IMAGESYNC_PLAN_KEY``)
    verified, cut to ``options.shard``, and refused unless it was made for ``options.target``,
    its source layout and (when one is named) the images file as it is now."""
    from imagesync.plan.checks import check_plan
    from imagesync.plan.document import load_plan
    from imagesync.plan.key import PLAN_KEY_ENV, plan_key_from_environment

    key = plan_key_from_environment()
    loaded = load_plan(plan_file, key)
    if loaded.signed and key is None:
        (listener or RunListener()).warning(
            f"Warning: {plan_file} carries an hmac, but {PLAN_KEY_ENV} is not set: "
            "it is not checked"
        )
    saved = plan_of_shard(loaded.plan, options.shard)
    images = (
        _load_images(options, saved.target_prefix, saved.source_layout)
        if options.images_file
        else None
    )
    check_plan(saved, images, options.target, options.source_layout)
    return saved


def apply(saved: Plan, options: RunOptions) -> ApplyReport:
    """Execute ``saved`` (from :func:`read_plan`) and nothing else; the private signing key is
    read, when the plan adds signatures, before any request."""
    from imagesync.keyring import apply_key
    from imagesync.stores.connection import open_stores

    config = _registries_config(options.connection)
    signing_key = apply_key(options.keys, config, saved)
    stores = open_stores(options.connection, saved.prefix, saved.source_tree, config)
    with sigterm_interrupts(), _applier(options, stores, signing_key, fresh=False) as run:
        return _apply_with(run, saved)


def plan_of_shard(saved: Plan, shard: Shard | None) -> Plan:
    """``apply PLAN --shard K/N``: a whole plan's part K, or a shard's plan if it is K/N."""
    from imagesync.errors import PlanRejected

    if shard is None or saved.shard == shard:
        return saved
    if saved.shard is None:
        return saved.in_shard(shard)
    raise PlanRejected(
        f"the plan is shard {saved.shard}, not {shard}",
        f"apply the plan of shard {shard}, or leave --shard out",
    )


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While applying, SIGTERM (CI cancelling a job, Kubernetes stopping a pod) stops the run
    the way Ctrl-C does: no new work, no tag on an incomplete image, a report of what was
    done. The handler before is put back after."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        # None: a handler not set from Python, which cannot be put back; the default stands in.
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def write_step_summary(markdown: Callable[[], str]) -> None:
    """GitHub Actions shows ``$GITHUB_STEP_SUMMARY`` on the run's page; appending keeps
    earlier steps' text.

    ``markdown`` is called only when there is a summary to write: outside Actions the
    Markdown (and its module) would cost start-up and exit time for nothing. A summary that
    cannot be written is an :class:`~imagesync.outputs.OutputError`; the caller decides
    whether that fails the run (the command line warns: the work is done by then)."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        from imagesync.outputs import write_output

        hint = "point GITHUB_STEP_SUMMARY at a file in a directory that exists, or unset it"
        write_output(path, markdown() + "\n", "the step summary", hint, append=True)


# The phase times of the runs inside phase_timings(), in the context that asked for them.
_phase_times: ContextVar[dict[str, float] | None] = ContextVar("phase_times", default=None)


@contextmanager
def phase_timings() -> Iterator[dict[str, float]]:
    """Seconds each phase of the runs inside took, by name (``plan``, ``apply``; a later run's
    replace an earlier's).

    For the benchmarks, which run the command line in-process and want where its time went
    without reaching into private functions. Planning in ``sync`` and ``apply -i`` starts
    blob copies, so its time holds theirs."""
    times: dict[str, float] = {}
    token = _phase_times.set(times)
    try:
        yield times
    finally:
        _phase_times.reset(token)


@contextmanager
def _phase(name: str) -> Iterator[None]:
    times = _phase_times.get()
    started = time.perf_counter()
    try:
        yield
    finally:
        if times is not None:
            times[name] = time.perf_counter() - started


@dataclass(frozen=True)
class _Planning:
    """What planning needs, read and opened in the order a user's mistakes should show: the
    images file, then the keys (before any request), then the stores."""

    images: ImagesFile
    keys: Keys
    stores: Stores
    options: PlanOptions


def _prepare(options: RunOptions, listener: RunListener, *, private: bool) -> _Planning:
    """``private``: apply follows in this run, so the private signing key is read too."""
    from imagesync.keyring import plan_keys
    from imagesync.stores.connection import open_stores

    images = _load_images(options).in_shard(options.shard)
    for problem in images.warnings:
        listener.warning(str(problem))
    config = _registries_config(options.connection)
    keys = plan_keys(options.keys, config, images, private=private)
    stores = open_stores(options.connection, images.target_prefix, images.source_layout, config)
    planning = replace(options.planning, signing=keys.signing, verifying=keys.verifying)
    return _Planning(images, keys, stores, planning)


def _make_plan(planning: _Planning, on_change: Callable[[Change], None] | None = None) -> Plan:
    from imagesync.plan.planner import make_plan

    with _phase("plan"):
        return make_plan(planning.images, planning.stores, planning.options, on_change)


def _load_images(
    options: RunOptions,
    default_target: str | None = None,
    default_source_layout: str | None = None,
) -> ImagesFile:
    """The images file; a saved plan's target and source layout count where the options
    give none."""
    from imagesync.images.file import load_images_file
    from imagesync.reference import parse_layout_tree

    layout = options.source_layout or default_source_layout
    tree = parse_layout_tree(layout) if layout else None
    path = options.images_file or DEFAULT_IMAGES_FILE
    return load_images_file(path, options.target, default_target, tree)


def _registries_config(connection: ConnectionOptions) -> RegistriesConfig | None:
    """The registries config, read once per run for the keys it names and the registries it
    configures; None when none was given (and then the registry code is not loaded: a run
    between layouts needs none)."""
    if connection.registries_config is None:
        return None
    from imagesync.stores.registry.registries import load_registries_config

    return load_registries_config(connection.registries_config)


def _applier(
    options: RunOptions, stores: Stores, signing_key: SigningKey | None, *, fresh: bool
) -> Applier:
    """An applier that works on as many images at once as plan; ``fresh``: the plan is being
    made by this process, now; ``signing_key`` adds the plan's signatures."""
    from imagesync.apply.applier import Applier, ApplyOptions
    from imagesync.stores.connection import retry_policy

    apply_options = ApplyOptions(
        options.planning.parallelism,
        fresh_plan=fresh,
        retry=retry_policy(options.connection),
        signing_key=signing_key,
    )
    return Applier(stores, apply_options)


def _apply_with(applier: Applier, saved: Plan) -> ApplyReport:
    from imagesync.apply.progress import progress_for

    with progress_for(saved) as progress, _phase("apply"):
        return applier.apply(saved, progress)
