#!/usr/bin/env bash
# The body of the imagesync GitHub Action (action.yml), kept in a file so that it can be run and
# tested outside GitHub. Everything comes in through environment variables, never through
# ${{ }} text pasted into a script (that would let an input run shell code).
#
# Inputs (set by action.yml from the action's inputs):
#   IMAGESYNC_COMMAND            sync (default) | plan | apply | validate | show | summary
#   IMAGESYNC_IMAGES_FILE        images file (default external-images.yaml)
#   IMAGESYNC_TARGET             target prefix; empty: the images file's `target:`
#   IMAGESYNC_PLAN_FILE          where the plan JSON goes (default imagesync-plan.json); for show
#                                and summary also a directory of the shards' plans
#   IMAGESYNC_REPORT_FILE        where the apply report JSON goes (default imagesync-report.json);
#                                for summary also a directory of the shards' reports
#   IMAGESYNC_SHARD              K/N: plan and apply only shard K of N (--shard); empty: all
#   IMAGESYNC_STEP_SUMMARY       false: imagesync does not write the step summary (the shards of a
#                                matrix leave it to one summary job); default true
#   IMAGESYNC_DEBUG              true: log every HTTP request (secrets redacted)
#   IMAGESYNC_REGISTRIES_CONFIG  registries config file (optional)
#   IMAGESYNC_EXTRA_ARGS         more options for plan, apply and show (e.g. --parallelism 4),
#                                split on blanks: no quoting, no globbing, never evaluated
#   IMAGESYNC_BIN                the imagesync executable (default: imagesync on PATH)
#   IMAGESYNC_PLAN_KEY           a secret: plan signs the plan (HMAC), apply refuses an unsigned
#                                one. imagesync reads it from the environment; on pull requests
#                                it is removed, so that no plan of an unreviewed file is signed.
# From GitHub: GITHUB_EVENT_NAME, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY (imagesync appends its
# Markdown there itself), RUNNER_DEBUG. Credentials reach imagesync through its own variables
# (SYNCER_ACCESS_TOKEN, SYNCER_TARGET_REPO_AUTH_KEY, DOCKER_CONFIG), set by the workflow.
#
# What runs, by event:
#   pull_request, pull_request_target  imagesync plan, whatever the command says (validate, show
#                                      and summary, which cannot write either, run as asked): a
#                                      pull request never writes to a registry.
#   push                               the command: sync/apply = plan, then apply that plan.
#   anything else                      refused.
# summary renders the plan file(s) and, when there are any, the report file(s) as one Markdown
# review into the step summary (the shards of a matrix, put together).
# Outputs (GITHUB_OUTPUT): plan-file, report-file (empty when nothing was applied), exit-code.
# The script exits with imagesync's exit code: 0 ok, 1 conflicts or errors.
set -euo pipefail

fail() {
    # ::error:: makes GitHub show the message as an annotation; it is plain text elsewhere.
    echo "::error title=imagesync::$*" >&2
    exit 1
}

command_name="${IMAGESYNC_COMMAND:-sync}"
images_file="${IMAGESYNC_IMAGES_FILE:-external-images.yaml}"
target="${IMAGESYNC_TARGET:-}"
plan_file="${IMAGESYNC_PLAN_FILE:-imagesync-plan.json}"
report_file="${IMAGESYNC_REPORT_FILE:-imagesync-report.json}"
registries_config="${IMAGESYNC_REGISTRIES_CONFIG:-}"
shard="${IMAGESYNC_SHARD:-}"
imagesync="${IMAGESYNC_BIN:-imagesync}"
event="${GITHUB_EVENT_NAME:-}"

case "$command_name" in
    sync | plan | apply | validate | show | summary) ;;
    *) fail "unknown command '$command_name'; use sync, plan, apply, validate, show or summary" ;;
esac

case "$event" in
    pull_request | pull_request_target) pull_request=true ;;
    push) pull_request=false ;;
    "") fail "GITHUB_EVENT_NAME is not set; this script runs in GitHub Actions (or a test that sets it)" ;;
    *) fail "event '$event' is not supported: imagesync runs on pull_request_target or pull_request (plan only) and on push (plan and apply)" ;;
esac

for value in "$images_file" "$target" "$plan_file" "$report_file" "$registries_config" "$shard"; do
    # These end up as GITHUB_OUTPUT lines; a newline would let a value set other outputs.
    if [[ "$value" == *$'\n'* || "$value" == *$'\r'* ]]; then
        fail "inputs must not contain line breaks"
    fi
done

if [[ "$pull_request" == true ]]; then
    # The images file is the pull request's: data to read, checked the way untrusted data is.
    # A symbolic link would make imagesync read (and quote in its error messages) whatever
    # file it points at on the runner, such as a credentials file.
    if [[ -L "$images_file" ]]; then
        fail "$images_file is a symbolic link; on pull requests the images file must be a regular file"
    fi
    # Credentials are for the target, and without --target the target would come from the
    # images file, which the pull request can edit: the token would go wherever it says.
    if [[ -z "$target" && (-n "${SYNCER_ACCESS_TOKEN:-}" || -n "${SYNCER_TARGET_REPO_AUTH_KEY:-}") ]]; then
        fail "on pull requests with target credentials set, give the target as the 'target' input: the images file's target: is under the pull request's control"
    fi
    case "$command_name" in
        sync | apply)
            echo "::notice title=imagesync::$event: running plan instead of $command_name; a pull request never writes to the registry" >&2
            command_name=plan
            ;;
    esac
    # A signed plan is trusted by any apply that holds the key: a pull request's plan (of an
    # images file nobody has reviewed yet) must never be one.
    if [[ -n "${IMAGESYNC_PLAN_KEY:-}" ]]; then
        echo "::notice title=imagesync::$event: the plan key is not used on pull requests; this plan is not signed" >&2
    fi
    unset IMAGESYNC_PLAN_KEY
fi

common=(-i "$images_file")
if [[ -n "$target" ]]; then
    common+=(--target "$target")
fi
options=()
if [[ -n "$registries_config" ]]; then
    options+=(--registries-config "$registries_config")
fi
if [[ -n "$shard" ]]; then
    options+=(--shard "$shard")
fi
summary="${GITHUB_STEP_SUMMARY:-}"
if [[ "${IMAGESYNC_STEP_SUMMARY:-true}" == false ]]; then
    # imagesync appends to GITHUB_STEP_SUMMARY itself when it is set.
    unset GITHUB_STEP_SUMMARY
fi
if [[ "${IMAGESYNC_DEBUG:-false}" == true || "${RUNNER_DEBUG:-}" == 1 ]]; then
    options+=(--debug)
fi
extra=()
if [[ -n "${IMAGESYNC_EXTRA_ARGS:-}" ]]; then
    # -r: backslashes stay; the default IFS splits on blanks; globs are not expanded by read.
    read -r -a extra <<<"$IMAGESYNC_EXTRA_ARGS"
fi

write_outputs() {
    if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
        {
            printf 'plan-file=%s\n' "$1"
            printf 'report-file=%s\n' "$2"
            printf 'exit-code=%s\n' "$3"
        } >>"$GITHUB_OUTPUT"
    fi
}

run() {
    echo "+ imagesync $*" >&2
    "$imagesync" "$@"
}

# Runs imagesync plan; its exit code is in $plan_code afterwards (0 or 1: plan is always
# written, conflicts and errors included, unless the images file itself is unusable).
plan() {
    rm -f -- "$plan_file"
    plan_code=0
    run plan "${common[@]}" -o "$plan_file" --format text "${options[@]}" "${extra[@]}" ||
        plan_code=$?
}

code=0
case "$command_name" in
    validate)
        # validate takes no other options: extra-args are for the commands that talk to registries.
        run validate "${common[@]}" || code=$?
        write_outputs "" "" "$code"
        ;;
    show)
        run show "$plan_file" "${extra[@]}" || code=$?
        write_outputs "$plan_file" "" "$code"
        ;;
    summary)
        # One review of the shards' plans (and, after apply, their reports); a set that is not
        # one plan's is refused by imagesync, with every reason.
        [[ -n "$summary" ]] || fail "GITHUB_STEP_SUMMARY is not set; summary writes the step summary"
        # show exits as plan did (1 for a conflict or an error, or a set it refuses), report as
        # apply did: the step fails when either does.
        run show "$plan_file" --format markdown >>"$summary" || code=$?
        if [[ -e "$report_file" ]]; then
            report_code=0
            run report "$report_file" --format markdown >>"$summary" || report_code=$?
            code=$((code > report_code ? code : report_code))
        else
            report_file=""
        fi
        write_outputs "$plan_file" "$report_file" "$code"
        ;;
    plan)
        plan
        code=$plan_code
        [[ -f "$plan_file" ]] || plan_file=""
        write_outputs "$plan_file" "" "$code"
        ;;
    sync | apply)
        plan
        if [[ ! -f "$plan_file" ]]; then
            # No plan at all (an invalid images file, an unreachable target): nothing to apply.
            write_outputs "" "" "$plan_code"
            exit "$plan_code"
        fi
        # A plan with conflicts or errors is still applied: its creates are executed, the
        # conflicts and errors are reported again, and the exit code is 1 (design §5).
        rm -f -- "$report_file"
        apply_code=0
        run apply "$plan_file" "${common[@]}" --format json "${options[@]}" "${extra[@]}" \
            >"$report_file" || apply_code=$?
        code=$((plan_code > apply_code ? plan_code : apply_code))
        [[ -s "$report_file" ]] || report_file=""
        write_outputs "$plan_file" "$report_file" "$code"
        ;;
esac
exit "$code"
