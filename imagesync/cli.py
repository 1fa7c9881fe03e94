"""The command line: parses options into typed values, makes one call into the library
(``run.py`` for the commands that talk to registries), renders what comes back and exits with
its code; no logic of its own.

Start-up is cheap by design. At import this module loads click, the defaults that --help
shows (``defaults.py``, ``retry.py``) and ``run.py``'s option types, nothing else: each command
imports the library functions it calls when it runs. Below those, the package keeps values
apart from machinery (the plan and the apply report are values; the planner and applier take
stores; the network stack loads behind ``stores.connection.open_stores``), so ``validate`` and
``show`` load no network code either (``tests/test_startup.py`` holds both).
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from imagesync import __version__
from imagesync.defaults import DEFAULT_PARALLELISM, FORMATS, MARKDOWN_MAX_BYTES
from imagesync.errors import ImagesyncError
from imagesync.printable import printable
from imagesync.retry import DEFAULT_ATTEMPTS
from imagesync.run import DEFAULT_IMAGES_FILE, RunListener, RunOptions, write_step_summary

if TYPE_CHECKING:
    from imagesync.diagnostics import Problem
    from imagesync.images.shard import Shard
    from imagesync.keyring import KeyOptions
    from imagesync.plan.document import Plan
    from imagesync.plan.planner import PlanOptions
    from imagesync.stores.connection import ConnectionOptions

F = TypeVar("F", bound=Callable[..., Any])
# A command's callback: what click calls with the values of its options.
Command = Callable[..., None]


def images_file_option(function: F) -> F:
    return click.option(
        "-i",
        "--images-file",
        envvar="SYNCER_IMAGES_FILE",
        default=DEFAULT_IMAGES_FILE,
        show_default=True,
        type=click.Path(dir_okay=False),
        help="YAML file with the images to sync [SYNCER_IMAGES_FILE]",
    )(function)


TARGET_ENV = ("SYNCER_TARGET_REPO", "SYNCER_TARGET_REPO_PREFIX")


def target_option(function: F) -> F:
    return click.option(
        "--target",
        "-r",
        "--target-repo-prefix",
        "target",
        envvar=list(TARGET_ENV),
        metavar="PREFIX",
        callback=_one_target_from_environment,
        help="Registry prefix to mirror below, e.g. registry.example.com/external (a trailing "
        "/ is fine), or oci:DIR to mirror into a tree of OCI image layouts; wins over the "
        "images file's `target:` [SYNCER_TARGET_REPO, SYNCER_TARGET_REPO_PREFIX]",
    )(function)


def _one_target_from_environment(
    context: click.Context, parameter: click.Parameter, value: str | None
) -> str | None:
    """Both variables set to different prefixes: which one was meant is not ours to guess."""
    if context.get_parameter_source("target") is not ParameterSource.ENVIRONMENT:
        return value
    given = {name: os.environ.get(name, "").strip() for name in TARGET_ENV}
    if len({text.rstrip("/") for text in given.values() if text}) > 1:
        raise click.BadParameter(
            " and ".join(f"{name}={text!r}" for name, text in given.items())
            + " name different prefixes; set one of them",
            context,
            parameter,
        )
    return value


def shard_option(function: F) -> F:
    return click.option(
        "--shard",
        metavar="K/N",
        callback=_shard,
        help="Only the part K of N of the images file (K from 0, as JOB_COMPLETION_INDEX): "
        "the entries whose target repository hashes to K, for N jobs that share the work",
    )(function)


def _shard(context: click.Context, parameter: click.Parameter, value: str | None) -> Shard | None:
    from imagesync.images.shard import Shard

    if value is None:
        return None
    try:
        return Shard.parse(value)
    except ImagesyncError as error:
        raise click.BadParameter(str(error), context, parameter) from None


def source_layout_option(function: F) -> F:
    return click.option(
        "--source-layout",
        metavar="DIR",
        type=click.Path(file_okay=False),
        help="Read every source from this tree of OCI image layouts, which `--target oci:DIR` "
        "wrote from the same images file; no source registry is asked (air gaps)",
    )(function)


def signing_options(function: Command) -> Command:
    """The cosign keys: what signs what lands, what verifies what comes in; the command takes
    them as one ``keys: KeyOptions``."""
    function = _folding_keys(function)
    decorators = [
        click.option(
            "--sign-key",
            metavar="FILE",
            type=click.Path(dir_okay=False),
            help="Sign every image that lands in the target with this cosign key (cosign.key, "
            "passphrase from COSIGN_PASSWORD, or a PKCS#8 PEM); plan takes the public key "
            "(cosign.pub) too",
        ),
        click.option(
            "--sign-children",
            is_flag=True,
            help="With --sign-key: sign each platform manifest of an index too, not just the index",
        ),
        click.option(
            "--verify-key",
            metavar="FILE",
            multiple=True,
            type=click.Path(dir_okay=False),
            help="Make an image an error in the plan unless it carries a cosign signature "
            "that verifies with one of these public keys (repeatable)",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def report_problems(problems: Iterable[Problem]) -> None:
    """One line per problem on stderr, ``file:line: entry N: message (fix: …)``."""
    for problem in problems:
        echo_line(str(problem), err=True)


def echo_line(text: str, *, err: bool = False) -> None:
    """One line of a message: text that may quote a file or a registry, made printable so that
    it is one line in a terminal and in a CI log (``::error ...::`` from a registry stays
    text)."""
    click.echo(printable(text), err=err)


def fail(error: ImagesyncError) -> None:
    echo_line(f"Error: {error.message}", err=True)
    if error.hint:
        echo_line(f"  fix: {error.hint}", err=True)
    sys.exit(1)


def step_summary(markdown: Callable[[], str]) -> None:
    """Append to ``$GITHUB_STEP_SUMMARY``; a summary that cannot be written is a warning:
    what the command did is done, and its output and exit code say so already."""
    try:
        write_step_summary(markdown)
    except ImagesyncError as error:
        echo_line(f"Warning: {error.message} ({error.hint})", err=True)


def run() -> None:
    """The ``imagesync`` command (and ``python -m imagesync``): :func:`main`, then an exit
    that skips tearing the interpreter down.

    Every module, connection and thread pool would be freed one by one on the way out (tens of
    milliseconds on a small machine) for nothing: the output is flushed here, the files were
    closed where they were written, and the pools are shut down by then. Tests call
    :func:`main` itself.
    """
    try:
        main()
        code: object = 0
    except SystemExit as exit_:
        code = exit_.code
    if not isinstance(code, int):
        if code is not None:
            print(code, file=sys.stderr)  # what SystemExit("text") would have printed
        code = 0 if code is None else 1
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a reader that went away (| head) or closed it
            stream.flush()
    os._exit(code)


class _HelpFormatter(click.HelpFormatter):
    """Wraps option help at spaces only: ``external-images.yaml`` is never cut at its hyphen."""

    def write_dl(self, rows: Any, col_max: int = 30, col_spacing: int = 2) -> None:
        start = len(self.buffer)
        held = [(first, second.replace("-", _HELD_HYPHEN)) for first, second in rows]
        super().write_dl(held, col_max, col_spacing)
        self.buffer[start:] = [text.replace(_HELD_HYPHEN, "-") for text in self.buffer[start:]]


# A stand-in of the same width that textwrap does not break at.
_HELD_HYPHEN = "\u2011"


class _Context(click.Context):
    formatter_class = _HelpFormatter


class _Command(click.Command):
    context_class = _Context


class _Group(click.Group):
    context_class = _Context
    command_class = _Command


class _EnvironmentFlag(click.types.BoolParamType):
    """A flag that a variable can set: a wrong value names the variable and what it takes."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> bool:
        if (
            self.str_to_bool(value) is None
            and param is not None
            and ctx is not None
            and ctx.get_parameter_source(param.name or "") is ParameterSource.ENVIRONMENT
        ):
            self.fail(
                f"{param.envvar}={value!r} is neither true nor false; set it to true or "
                "false (1 or 0, yes or no, on or off also do; empty is false)",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


ENVIRONMENT_FLAG = _EnvironmentFlag()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="imagesync")
def main() -> None:
    """Mirror container images into a target registry: plan, review, apply.

    Tags in the target are immutable: imagesync never overwrites one.
    """


@main.command(short_help="Check the images file offline; report every problem.")
@images_file_option
@target_option
def validate(images_file: str, target: str | None) -> None:
    """Check the images file offline (no network) and report every problem.

    Exits 0 when the file is valid (warnings allowed), 1 when it has errors.
    """
    from imagesync.diagnostics import count
    from imagesync.images.file import InvalidImagesFile, load_images_file

    try:
        images = load_images_file(images_file, target)
    except InvalidImagesFile as error:
        report_problems(error.problems)
        echo_line(f"{images_file}: not valid, {count(error.problems)}", err=True)
        sys.exit(1)
    except ImagesyncError as error:
        fail(error)
        return
    report_problems(images.warnings)
    number = len(images.entries)
    summary = f"{images_file}: {number} image{'' if number == 1 else 's'}, valid"
    if images.warnings:
        summary += f" ({count(images.warnings)})"
    echo_line(summary)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Errors users can act on end the command with their message and fix, no traceback."""
    from imagesync.diagnostics import InvalidFile, count

    try:
        yield
    except InvalidFile as error:
        report_problems(error.problems)
        echo_line(f"{error.path}: not valid, {count(error.problems)}", err=True)
        sys.exit(1)
    except ImagesyncError as error:
        fail(error)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


def connection_options(function: Command) -> Command:
    """The options every command that talks to registries shares; the command takes them as
    ``connection: ConnectionOptions`` and ``planning: PlanOptions``, logging set up."""
    return _access_options(_signature_options(_network_options(_folding_connection(function))))


def _network_options(function: F) -> F:
    """How registries are reached, and how hard imagesync works them."""
    decorators = [
        click.option(
            "--registries-config",
            envvar="SYNCER_REGISTRIES_CONFIG",
            type=click.Path(dir_okay=False, exists=True),
            help="YAML with per-registry mirrors, TLS and concurrency [SYNCER_REGISTRIES_CONFIG]",
        ),
        click.option(
            "--parallelism",
            type=click.IntRange(1, 256),
            default=DEFAULT_PARALLELISM,
            show_default=True,
            help="How many images are worked on at once",
        ),
        click.option(
            "--retries",
            type=click.IntRange(1, 20),
            default=DEFAULT_ATTEMPTS,
            show_default=True,
            help="Attempts per request for transient failures (5xx, 429, resets)",
        ),
        click.option(
            "--timeout",
            type=float,
            default=60,
            show_default=True,
            callback=_seconds,
            help="Seconds a registry may take to answer a request",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _signature_options(function: F) -> F:
    """Whether signatures and other referrers come along, and whether they must."""
    decorators = [
        click.option(
            "--no-signatures",
            is_flag=True,
            help="Leave signatures, attestations, SBOMs and referrers out",
        ),
        click.option(
            "--require-signatures",
            is_flag=True,
            help="Make an image without a signature (cosign, Sigstore bundle or Notary "
            "Project) an error in the plan",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _access_options(function: F) -> F:
    """What the requests show: the debug log of them, and the target's credentials."""
    decorators = [
        click.option(
            "--debug",
            envvar="SYNCER_DEBUG",
            is_flag=True,
            type=ENVIRONMENT_FLAG,
            help="Log every HTTP request (secrets redacted) [SYNCER_DEBUG]",
        ),
        click.option(
            "-t",
            "--target-repo-auth-key",
            envvar="SYNCER_TARGET_REPO_AUTH_KEY",
            type=click.Path(dir_okay=False),
            help="JSON key file for the target registry (basic auth as _json_key) "
            "[SYNCER_TARGET_REPO_AUTH_KEY]",
        ),
        click.option(
            "-a",
            "--access-token",
            envvar="SYNCER_ACCESS_TOKEN",
            help="Bearer token for the target registry [SYNCER_ACCESS_TOKEN]",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _seconds(context: click.Context, parameter: click.Parameter, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise click.BadParameter("give a number of seconds above 0", context, parameter)
    return value


def format_option(choices: tuple[str, ...] = FORMATS) -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default="text",
        show_default=True,
        help="Output format on stdout",
    )


def max_bytes_option(function: F) -> F:
    return click.option(
        "--max-bytes",
        type=click.IntRange(min=4096),
        default=MARKDOWN_MAX_BYTES,
        show_default=True,
        help="Markdown: at most this many bytes (UTF-8), every conflict and error named first "
        "(a pull-request comment: 65,536 characters at most; a step summary: 1 MiB)",
    )(function)


def run_options(command: Command) -> Command:
    """Folds -i, --target, --source-layout, --shard and what :func:`signing_options` and
    :func:`connection_options` folded into the one ``options: RunOptions`` the command takes.

    It goes below those decorators: they hand it their values, and it hands one on."""

    @functools.wraps(command)
    def folded(
        *,
        images_file: str | None,
        target: str | None,
        source_layout: str | None,
        shard: Shard | None,
        connection: ConnectionOptions,
        planning: PlanOptions,
        keys: KeyOptions,
        **command_arguments: object,
    ) -> None:
        options = RunOptions(
            images_file=images_file,
            target=target,
            source_layout=source_layout,
            shard=shard,
            connection=connection,
            planning=planning,
            keys=keys,
        )
        command(options=options, **command_arguments)

    return folded


def _folding_keys(command: Command) -> Command:
    """The options of :func:`signing_options`, folded into ``keys``."""

    @functools.wraps(command)
    def folded(
        *,
        sign_key: str | None,
        sign_children: bool,
        verify_key: tuple[str, ...],
        **command_arguments: object,
    ) -> None:
        from imagesync.keyring import KeyOptions

        keys = KeyOptions(
            sign_key=Path(sign_key) if sign_key else None,
            sign_children=sign_children,
            verify_keys=tuple(Path(path) for path in verify_key),
        )
        command(keys=keys, **command_arguments)

    return folded


def _folding_connection(command: Command) -> Command:
    """The options of :func:`connection_options`, folded into ``connection`` and ``planning``;
    ``--debug`` takes effect here, before anything is read."""

    @functools.wraps(command)
    def folded(
        *,
        registries_config: str | None,
        parallelism: int,
        retries: int,
        timeout: float,
        no_signatures: bool,
        require_signatures: bool,
        debug: bool,
        target_repo_auth_key: str | None,
        access_token: str | None,
        **command_arguments: object,
    ) -> None:
        from imagesync.logs import configure_logging
        from imagesync.plan.planner import PlanOptions
        from imagesync.stores.connection import ConnectionOptions

        if no_signatures and require_signatures:
            raise click.UsageError(
                "--require-signatures needs the signatures that --no-signatures leaves out; "
                "give one of them"
            )
        configure_logging(debug)
        connection = ConnectionOptions(
            registries_config=Path(registries_config) if registries_config else None,
            access_token=access_token or None,
            key_file=Path(target_repo_auth_key) if target_repo_auth_key else None,
            retries=retries,
            timeout=timeout,
        )
        planning = PlanOptions(
            parallelism=parallelism,
            signatures=not no_signatures,
            require_signatures=require_signatures,
        )
        command(connection=connection, planning=planning, **command_arguments)

    return folded


@dataclass(frozen=True)
class _Shown(RunListener):
    """A run's warnings on stderr and, before :func:`imagesync.run.plan_and_apply` applies,
    its plan as text (on stderr when stdout is for the report in another format) and in the
    step summary."""

    plan_on_stderr: bool = False

    def warning(self, text: str) -> None:
        echo_line(text, err=True)

    def planned(self, plan: Plan) -> None:
        from imagesync.render import render_plan

        click.echo(render_plan(plan, "text"), nl=False, err=self.plan_on_stderr)
        step_summary(lambda: render_plan(plan, "markdown"))


def _plan_exit_code(plan: Plan, detailed: bool) -> int:
    if plan.has_failures:
        return 1
    return 2 if detailed and plan.has_changes else 0


@main.command(short_help="Resolve every image; write a plan to review.")
@images_file_option
@target_option
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Write the plan (JSON) here")
@format_option()
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when the plan has changes and nothing failed (0: nothing to do, 1: failures)",
)
@click.option(
    "--changed-only", is_flag=True, help="Leave images to skip out of the output (not counts)"
)
@source_layout_option
@shard_option
@signing_options
@connection_options
@run_options
def plan(
    options: RunOptions, out: str | None, fmt: str, detailed_exitcode: bool, changed_only: bool
) -> None:
    """Resolve every image against its source and the target; write a reviewable plan."""
    from imagesync import run
    from imagesync.outputs import check_output
    from imagesync.plan.key import plan_key_from_environment
    from imagesync.render import render_plan

    with _user_errors():
        key = plan_key_from_environment()
        if out:
            check_output(out, "the plan", "give -o a path in a directory that exists")
        result = run.plan(options, _Shown())
        if out:
            result.write(out, key)
    click.echo(render_plan(result, fmt, changed_only=changed_only, plan_file=out), nl=False)
    step_summary(lambda: render_plan(result, "markdown", changed_only=changed_only, plan_file=out))
    sys.exit(_plan_exit_code(result, detailed_exitcode))


@main.command(short_help="Execute a saved plan (or plan and apply: -i FILE).")
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "-i",
    "--images-file",
    envvar="SYNCER_IMAGES_FILE",
    default=None,
    type=click.Path(dir_okay=False),
    help="With PLAN: refuse the plan unless it was made from this file. Without PLAN: plan "
    "this file and apply at once [SYNCER_IMAGES_FILE]",
)
@target_option
@format_option(("text", "json", "markdown"))
@source_layout_option
@shard_option
@signing_options
@connection_options
@run_options
def apply(plan_file: str | None, options: RunOptions, fmt: str) -> None:
    """Execute a saved plan (or, with -i and no PLAN, plan and apply in one go)."""
    from imagesync import run
    from imagesync.render import render_report

    if plan_file is None and options.images_file is None:
        raise click.UsageError("give a PLAN file, or -i FILE to plan and apply at once")
    if plan_file is not None and options.keys.verify_keys:
        raise click.UsageError(
            "--verify-key is checked when the plan is made: give it to plan (or to apply -i)"
        )
    with _user_errors():
        if plan_file is None:
            report = run.plan_and_apply(options, _Shown(plan_on_stderr=fmt != "text"))
        else:
            report = run.apply(run.read_plan(plan_file, options, _Shown()), options)
    click.echo(render_report(report, fmt), nl=False)
    step_summary(lambda: render_report(report, "markdown"))
    sys.exit(1 if report.failed else 0)


@main.command(short_help="Render saved plans as text, JSON or Markdown.")
@click.argument("plan_files", metavar="PLAN...", nargs=-1, required=True, type=click.Path())
@format_option()
@click.option(
    "--changed-only", is_flag=True, help="Leave images to skip out of the output (not counts)"
)
@max_bytes_option
def show(plan_files: tuple[str, ...], fmt: str, changed_only: bool, max_bytes: int) -> None:
    """Render a saved plan as text, JSON or Markdown.

    Several plan files (or a directory of them) are the shards of one plan (plan --shard):
    they are rendered as the one plan they are parts of. Exits as plan did: 1 when the plan
    holds conflicts or errors, else 0.
    """
    from imagesync.plan.merge import read_plans
    from imagesync.render import render_plan

    with _user_errors():
        loaded = read_plans(list(plan_files))
    where = plan_files[0] if len(plan_files) == 1 else None
    click.echo(
        render_plan(
            loaded.plan,
            fmt,
            changed_only=changed_only,
            plan_file=where,
            merged_from=loaded.merged_from,
            max_bytes=max_bytes,
        ),
        nl=False,
    )
    sys.exit(_plan_exit_code(loaded.plan, False))


@main.command(short_help="Render apply reports as text, JSON or Markdown.")
@click.argument("report_files", metavar="REPORT...", nargs=-1, required=True, type=click.Path())
@format_option()
@max_bytes_option
def report(report_files: tuple[str, ...], fmt: str, max_bytes: int) -> None:
    """Render apply reports (apply --format json) as text, JSON or Markdown.

    Several reports (or a directory of them) are those of the shards of one plan: they are
    rendered as one report. Exits 1 when any image failed or conflicted.
    """
    from imagesync.apply.report import read_reports
    from imagesync.render import render_report

    with _user_errors():
        merged = read_reports(list(report_files))
    where = report_files[0] if len(report_files) == 1 else None
    click.echo(render_report(merged, fmt, report_file=where, max_bytes=max_bytes), nl=False)
    sys.exit(1 if merged.failed else 0)


@main.command(short_help="The image-syncer's interface: plan, then apply.")
@images_file_option
@target_option
@click.option(
    "--dry-run",
    envvar="SYNCER_DRY_RUN",
    is_flag=True,
    type=ENVIRONMENT_FLAG,
    help="Only plan: print what would be synced, write nothing [SYNCER_DRY_RUN]",
)
@source_layout_option
@shard_option
@signing_options
@connection_options
@run_options
def sync(options: RunOptions, dry_run: bool) -> None:
    """The image-syncer's interface: plan, then apply unless --dry-run."""
    from imagesync import run
    from imagesync.render import render_report

    shown = _Shown()
    with _user_errors():
        if dry_run:
            planned = run.plan(options, shown)
            shown.planned(planned)
            sys.exit(_plan_exit_code(planned, False))
        report = run.plan_and_apply(options, shown)
    click.echo(render_report(report, "text"), nl=False)
    step_summary(lambda: render_report(report, "markdown"))
    sys.exit(1 if report.failed else 0)


@main.command(short_help="Compare two saved plans; exit 2 when they differ.")
@click.argument("old", type=click.Path())
@click.argument("new", type=click.Path())
@format_option(FORMATS)
def diff(old: str, new: str, fmt: str) -> None:
    """Compare two saved plans image by image; exit 0 when the same, 2 when they differ.

    OLD and NEW are each a plan file, or a directory holding the shards of one plan.
    """
    from imagesync.render.diff import diff_command

    with _user_errors():
        output, code = diff_command(old, new, fmt)
    click.echo(output, nl=False)
    sys.exit(code)
