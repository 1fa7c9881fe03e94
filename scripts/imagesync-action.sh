#!/usr/bin/env bash
# The body of the imagesync GitHub Action (action.yml), kept in a file so that it can be run and
# tested outside GitHub. Everything comes in through environment variables, never through
# ${{ }} text pasted into a script (that would let an input run shell code).
#
# Inputs (set by action.yml from the action's inputs):
#   IMAGESYNC_COMMAND            sync (default) | plan | apply | validate | show | summary |
#                                comment
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
#   IMAGESYNC_PR_COMMENT         true: on pull requests, plan, show and summary also write the
#                                pull-request comment's body (see "The comment" below)
# From GitHub: GITHUB_EVENT_NAME, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY (imagesync appends its
# Markdown there itself), RUNNER_DEBUG, RUNNER_TEMP (where the comment's body goes), and for the
# comment's link to the run GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_RUN_ID.
# Credentials reach imagesync through its own variables
# (SYNCER_ACCESS_TOKEN, SYNCER_TARGET_REPO_AUTH_KEY, DOCKER_CONFIG), set by the workflow.
#
# What runs, by event:
#   pull_request, pull_request_target  imagesync plan, whatever the command says (validate, show
#                                      and summary, which cannot write either, run as asked): a
#                                      pull request never writes to a registry.
#   push                               the command: sync/apply = plan, then apply that plan.
#                                      comment is refused (there is no pull request).
#   anything else                      refused.
# summary renders the plan file(s) and, when there are any, the report file(s) as one Markdown
# review into the step summary (the shards of a matrix, put together).
#
# The comment (pull requests only; IMAGESYNC_PR_COMMENT=true, or the command comment, which does
# nothing else): a Markdown file for the pull request's conversation, posted and updated in place
# by action.yml's next step. It starts with a hidden marker naming the images file, so each
# pull request has one comment per images file; then imagesync's Markdown of the plan, bounded
# so that the comment stays under GitHub's 65,536 characters (comment_markdown is the one place
# that asks imagesync for it); then a line naming the images file and the run. imagesync escapes
# what it renders (names and messages from the images file and from registries); what this
# script adds is inert by construction: the marker is percent-encoded, the file name is inline
# code that nothing in it can close, the link is built from GitHub's own values or left out.
# When there is no plan to show, the comment says so, so that no earlier push's plan stays up.
# Outputs (GITHUB_OUTPUT): plan-file, report-file (empty when nothing was applied), exit-code;
# comment-file and comment-header when a comment was written.
# The script exits with imagesync's exit code: 0 ok, 1 conflicts or errors. The command comment
# exits 0 once the comment is written: the plan's verdict is the plan job's.
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
    sync | plan | apply | validate | show | summary | comment) ;;
    *) fail "unknown command '$command_name'; use sync, plan, apply, validate, show, summary or comment" ;;
esac

case "$event" in
    pull_request | pull_request_target) pull_request=true ;;
    push) pull_request=false ;;
    "") fail "GITHUB_EVENT_NAME is not set; this script runs in GitHub Actions (or a test that sets it)" ;;
    *) fail "event '$event' is not supported: imagesync runs on pull_request_target or pull_request (plan only) and on push (plan and apply)" ;;
esac

comment=false
case "$command_name" in
    comment)
        [[ "$pull_request" == true ]] ||
            fail "command comment is for pull_request and pull_request_target: a push has no pull request to comment on"
        comment=true
        ;;
    plan | sync | apply | show | summary)
        if [[ "${IMAGESYNC_PR_COMMENT:-false}" == true && "$pull_request" == true ]]; then
            comment=true
        fi
        ;;
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

# -- the pull request's comment ----------------------------------------------------------------

# imagesync's bound for the plan's Markdown in a comment. GitHub takes 65,536 characters; the
# rest is room for the marker, the last line and the comment action's own hidden header.
comment_max_bytes=60000
comment_limit=65536

# The one place that asks imagesync for the comment's Markdown (a plan file, or a directory of a
# matrix's shards' plans).
comment_markdown() {
    run show "$1" --format markdown --max-bytes "$comment_max_bytes"
}

# $1 as a key for the hidden marker: letters, digits, . _ / and single - stay, every other byte
# (and the second - of --, which would end an HTML comment) becomes %XX.
marker_key() {
    local LC_ALL=C
    local text="$1" key="" char byte i
    for ((i = 0; i < ${#text}; i++)); do
        char="${text:i:1}"
        if [[ "$char" == [A-Za-z0-9._/] || ("$char" == - && "$key" != *-) ]]; then
            key+="$char"
        else
            printf -v byte '%%%02X' "'$char"
            key+="$byte"
        fi
    done
    printf '%s' "$key"
}

# $1 as Markdown inline code that nothing in it can close (no mention, no reference, no link,
# no HTML): a fence of more backticks than any run of them inside, and a space on each side.
code_span() {
    local fence='`'
    while [[ "$1" == *"$fence"* ]]; do
        fence+='`'
    done
    printf '%s %s %s' "$fence" "$1" "$fence"
}

# The run's page, when GitHub's values look like GitHub's values; else nothing.
run_link() {
    local server="${GITHUB_SERVER_URL:-}" repository="${GITHUB_REPOSITORY:-}" id="${GITHUB_RUN_ID:-}"
    if [[ "$server" =~ ^https://[A-Za-z0-9.-]+(:[0-9]+)?$ &&
        "$repository" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ && "$id" =~ ^[0-9]+$ ]]; then
        printf '[run %s](%s/%s/actions/runs/%s)' "$id" "$server" "$repository" "$id"
    fi
}

# Writes the comment's body for the plan at $1 (a file or a directory; empty: there is none) to
# a new file, and the file and the marker's key to GITHUB_OUTPUT.
write_comment() {
    local plan="$1" key body markdown show_code=0 where link
    key="$(marker_key "$images_file")"
    body="$(mktemp "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/imagesync-comment.XXXXXX")"
    markdown="$body.plan"
    if [[ -n "$plan" && -e "$plan" ]]; then
        # Exit code 1 is a plan with conflicts or errors: shown all the same.
        comment_markdown "$plan" >"$markdown" || show_code=$?
    else
        show_code=2
    fi
    link="$(run_link)"
    where="${link:-the run}"
    {
        printf '<!-- imagesync: %s -->\n' "$key"
        if ((show_code <= 1)) && [[ -s "$markdown" ]]; then
            cat -- "$markdown"
        else
            printf '### imagesync has no plan to show for this push\n\n'
            printf 'The plan could not be made or read (an unusable images file, an unreachable '
            printf 'registry, a missing shard). The reasons are in the log of %s.\n' "$where"
        fi
        # A blank line first: the line must not join a table or a list the Markdown ends with.
        printf '\n\n<sub>imagesync plan of %s, updated in place on every push to this pull request; the whole plan: %s (step summary and artifact).</sub>\n' \
            "$(code_span "$images_file")" "$where"
    } >"$body"
    rm -f -- "$markdown"
    # Bytes are at least characters: a body within the limit in bytes is within it.
    if (($(wc -c <"$body") > comment_limit - 1024)); then
        {
            printf '<!-- imagesync: %s -->\n' "$key"
            printf '### The plan is too large for a comment\n\n'
            printf 'The plan of %s is in the step summary and the artifact of %s.\n' \
                "$(code_span "$images_file")" "$where"
        } >"$body"
    fi
    if [[ -n "${GITHUB_OUTPUT:-}" ]]; then
        {
            printf 'comment-file=%s\n' "$body"
            printf 'comment-header=imagesync: %s\n' "$key"
        } >>"$GITHUB_OUTPUT"
    fi
}

code=0
case "$command_name" in
    comment)
        # The comment alone (the reusable workflow's comment job, after the plan jobs, with
        # their plans downloaded): the plan's verdict is theirs.
        write_outputs "$plan_file" "" 0
        ;;
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
        # apply did: the step fails when either does. Each gets half of a step summary's 1 MiB,
        # so the two together fit it.
        run show "$plan_file" --format markdown --max-bytes 524288 >>"$summary" || code=$?
        if [[ -e "$report_file" ]]; then
            report_code=0
            run report "$report_file" --format markdown --max-bytes 524288 >>"$summary" ||
                report_code=$?
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
if [[ "$comment" == true ]]; then
    # plan_file is empty when plan wrote none: the comment then says there is no plan.
    write_comment "$plan_file"
fi
exit "$code"
