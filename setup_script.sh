#!/usr/bin/env bash
# Set up eznas: a virtual environment in .venv, the package (editable, with its test tools, at the versions
# in constraints.txt: those the tests ran with), the `eznas` command, and the data root ($EZNAS_DATA, else
# ./data) filled from the local mirror $EZNAS_MIRROR when set, else from the public sources. Safe to re-run:
# every step skips what is already in place.
#
#   bash setup_script.sh                                # public downloads (CIFAR, NB-201 tables, SWAP)
#   EZNAS_MIRROR=../shared/data bash setup_script.sh    # copy a local mirror instead (sha256-checked)
#
# A bad mirror file, a failed download or a checksum mismatch stops the script with a non-zero exit and
# one `error:` line naming the file or URL; nothing half-written is left in the data root.
set -euo pipefail

# Paths given in the environment are relative to where the script was called from; the rest to the repo.
for var in EZNAS_DATA EZNAS_MIRROR; do
    if [[ -n "${!var:-}" && "${!var}" != /* ]]; then
        printf -v "$var" '%s/%s' "$PWD" "${!var}"
    fi
done
cd "$(dirname "${BASH_SOURCE[0]}")"
PYTHON=${PYTHON:-python3}
VENV=.venv

say() { printf 'setup: %s\n' "$*"; }

if [[ -x "$VENV/bin/python" ]]; then
    say "virtual environment $VENV already present"
else
    say "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

if TORCH=$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null); then
    say "torch $TORCH already installed"
else
    say "installing torch (constraints.txt: $(grep '^torch==' constraints.txt))"
    "$PY" -m pip install --quiet --disable-pip-version-check -c constraints.txt torch
fi

# Re-install only when pyproject.toml or constraints.txt changed since the last install (the stamp lives in
# the venv), or the command is missing.
STAMP="$VENV/.eznas-pyproject.sha256"
WANT=$("$PY" -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()
                                                      + open("constraints.txt", "rb").read()).hexdigest())')
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$VENV/bin/eznas" ]] \
        && "$PY" -c 'import eznas' >/dev/null 2>&1; then
    say "eznas already installed (pyproject.toml and constraints.txt unchanged)"
else
    say "installing eznas (editable, with dev extras, constraints.txt's versions)"
    "$PY" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
    echo "$WANT" >"$STAMP"
fi

DATA_ROOT=${EZNAS_DATA:-data}
if [[ -n "${EZNAS_MIRROR:-}" ]]; then
    say "filling data root $DATA_ROOT from mirror $EZNAS_MIRROR"
    "$VENV/bin/eznas" fetch --data-root "$DATA_ROOT" --mirror "$EZNAS_MIRROR"
else
    say "filling data root $DATA_ROOT from the public sources"
    "$VENV/bin/eznas" fetch --data-root "$DATA_ROOT"
fi
say "done"
