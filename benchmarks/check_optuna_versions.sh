#!/usr/bin/env bash
# The oldest Optuna pyproject.toml allows, and the newest: a fresh venv for each, the sweep tests
# in each (slow ones included). Run from anywhere; it leaves nothing behind.
#
#   bash benchmarks/check_optuna_versions.sh                  # the floor in pyproject.toml, newest
#   OLDEST=4.2.1 bash benchmarks/check_optuna_versions.sh     # try another floor
#
# About 13 minutes on the course machine's 2 shared cores: 2.5-3 minutes to build each venv
# (torch from the local wheel, the rest from PyPI), 3-4 minutes for each test run.
# Optuna 4.0-4.2 fail at import: optuna.exceptions.UpdateFinishedTrialError is new in 4.3.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
oldest=${OLDEST:-$(sed -n 's/.*"optuna>=\([0-9.]*\)".*/\1/p' pyproject.toml)}
tests=(tests/test_sweep_space.py tests/test_sweeper.py tests/test_dropin.py tests/test_hydra_suites.py
  tests/test_sweep_trust.py tests/test_sweep_signals.py)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

status=0
for spec in "optuna==$oldest" "optuna"; do
  start=$SECONDS
  venv="$work/venv-${spec//[=<>]/}"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -e "$root" "$spec" pytest hypothesis -c constraints.txt
  version=$("$venv/bin/python" -c "import optuna; print(optuna.__version__)")
  echo "== Optuna $version: venv in $((SECONDS - start)) s"
  if "$venv/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}" | tail -n 3; then
    echo "== Optuna $version: passed ($((SECONDS - start)) s in all)"
  else
    echo "== Optuna $version: FAILED ($((SECONDS - start)) s in all)"
    status=1
  fi
done
exit $status
