#!/usr/bin/env bash
# Submit any eznas command to SLURM with sbatch.
#
#   bash runjob.sh [options] [--] COMMAND...
#   bash runjob.sh --partition gpu --time 12:00:00 --gpus 1 --requeue python evolve.py --space NASBench201
#   bash runjob.sh --dry-run python verify_scores.py --proxy swap --n_samples 1000
#
# Options (each falls back to an environment variable, then to the default shown):
#   --partition P   $EZNAS_SLURM_PARTITION   (cluster default)
#   --account A     $EZNAS_SLURM_ACCOUNT     (none)
#   --time T        $EZNAS_SLURM_TIME        24:00:00
#   --mem M         $EZNAS_SLURM_MEM         16G
#   --cpus N        $EZNAS_SLURM_CPUS        2
#   --gpus N        $EZNAS_SLURM_GPUS        0
#   --job-name N    $EZNAS_SLURM_JOB_NAME    eznas
#   --requeue       let SLURM requeue the job (preemption, node failure); an evolve.py command then gets a
#                   fixed run folder (--out results/evolve/slurm-<job id> unless it names one) and a bare
#                   --resume, so a requeued job continues from its last checkpoint instead of starting over
#   --dry-run       print the batch script; submit nothing
#
# The batch script is kept in results/slurm/ and the job's output goes to results/slurm/<name>-<job id>.out.
# The job runs in this repository with .venv activated when there is one.
set -euo pipefail

die() { printf 'error: %s\n' "$*" >&2; exit 2; }

PARTITION=${EZNAS_SLURM_PARTITION:-}
ACCOUNT=${EZNAS_SLURM_ACCOUNT:-}
TIME=${EZNAS_SLURM_TIME:-24:00:00}
MEM=${EZNAS_SLURM_MEM:-16G}
CPUS=${EZNAS_SLURM_CPUS:-2}
GPUS=${EZNAS_SLURM_GPUS:-0}
JOB_NAME=${EZNAS_SLURM_JOB_NAME:-eznas}
REQUEUE=0
DRY_RUN=0

need_value() { [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --partition) need_value "$@"; PARTITION=$2; shift 2 ;;
        --account) need_value "$@"; ACCOUNT=$2; shift 2 ;;
        --time) need_value "$@"; TIME=$2; shift 2 ;;
        --mem) need_value "$@"; MEM=$2; shift 2 ;;
        --cpus) need_value "$@"; CPUS=$2; shift 2 ;;
        --gpus) need_value "$@"; GPUS=$2; shift 2 ;;
        --job-name) need_value "$@"; JOB_NAME=$2; shift 2 ;;
        --requeue) REQUEUE=1; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --) shift; break ;;
        --*) die "unknown option $1 (see bash runjob.sh --help)" ;;
        *) break ;;
    esac
done
[[ $# -gt 0 ]] || die "no command to submit (e.g. bash runjob.sh python evolve.py --space NASBench201)"
# check VALUE REGEX FLAG VARIABLE WHAT: the flag's value (or its variable's) must match
check() { [[ "$1" =~ $2 ]] || die "$3 (or \$$4) must be $5, got '$1'"; }
check "$CPUS" '^[1-9][0-9]*$' --cpus EZNAS_SLURM_CPUS "a positive integer"
check "$GPUS" '^[0-9]+$' --gpus EZNAS_SLURM_GPUS "a non-negative integer"
check "$TIME" '^([0-9]+-)?[0-9]+(:[0-9]{2}){0,2}$' --time EZNAS_SLURM_TIME "like [D-]HH:MM:SS"
check "$MEM" '^[1-9][0-9]*[KMGT]?$' --mem EZNAS_SLURM_MEM "a size like 16G (K, M, G or T; no suffix: MB)"
check "$JOB_NAME" '^[A-Za-z0-9._-]+$' --job-name EZNAS_SLURM_JOB_NAME "letters, digits, '.', '_' or '-'"
check "$PARTITION" '^[A-Za-z0-9._,-]*$' --partition EZNAS_SLURM_PARTITION "names of letters, digits, '.', '_', '-', ','"
check "$ACCOUNT" '^[A-Za-z0-9._-]*$' --account EZNAS_SLURM_ACCOUNT "letters, digits, '.', '_' or '-'"

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The command, shell-quoted; a requeueable evolve.py run gets a fixed folder and resumes from it.
COMMAND=$(printf '%q ' "$@")
COMMAND=${COMMAND% }
if [[ $REQUEUE -eq 1 ]] && printf '%s\n' "$@" | grep -q 'evolve\.py$'; then
    has_out=0 has_resume=0
    for arg in "$@"; do
        case "$arg" in --out|--out=*) has_out=1 ;; --resume|--resume=*) has_resume=1 ;; esac
    done
    if [[ $has_resume -eq 0 ]]; then
        [[ $has_out -eq 1 ]] || COMMAND+=' --out "results/evolve/slurm-${SLURM_JOB_ID}"'
        COMMAND+=' --resume'
    fi
fi

SCRIPT="#!/bin/bash
#SBATCH --job-name=$JOB_NAME
#SBATCH --time=$TIME
#SBATCH --mem=$MEM
#SBATCH --cpus-per-task=$CPUS
#SBATCH --output=$REPO/results/slurm/%x-%j.out
#SBATCH --open-mode=append"
[[ -n "$PARTITION" ]] && SCRIPT+=$'\n'"#SBATCH --partition=$PARTITION"
[[ -n "$ACCOUNT" ]] && SCRIPT+=$'\n'"#SBATCH --account=$ACCOUNT"
[[ "$GPUS" -gt 0 ]] && SCRIPT+=$'\n'"#SBATCH --gres=gpu:$GPUS"
if [[ $REQUEUE -eq 1 ]]; then SCRIPT+=$'\n#SBATCH --requeue'; else SCRIPT+=$'\n#SBATCH --no-requeue'; fi
SCRIPT+="
set -euo pipefail
cd $(printf '%q' "$REPO")
if [[ -f .venv/bin/activate ]]; then source .venv/bin/activate; fi
# eznas takes its threads from \$SLURM_CPUS_PER_TASK, shared among the workers it starts (eznas/threads.py)
echo \"eznas: job \${SLURM_JOB_ID:-?} (restart \${SLURM_RESTART_COUNT:-0}) on \$(hostname) at \$(date -Is)\"
$COMMAND
"

if [[ $DRY_RUN -eq 1 ]]; then
    printf '%s' "$SCRIPT"
    exit 0
fi
command -v sbatch >/dev/null || die "sbatch not found: run this on a SLURM login node (or use --dry-run)"
mkdir -p "$REPO/results/slurm"
FILE="$REPO/results/slurm/$JOB_NAME-$(date +%Y%m%d-%H%M%S)-$$.sh"
printf '%s' "$SCRIPT" >"$FILE.tmp" && mv "$FILE.tmp" "$FILE"
echo "runjob: batch script $FILE"
sbatch "$FILE"
