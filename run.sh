#!/usr/bin/env bash
# tflite_isp launcher: makes the pinned virtual environment (.venv: pyproject.toml + constraints.txt)
# on first use, then
#   ./run.sh                 the default job: embedded data -> train (export and score as they land)
#   ./run.sh test [ARGS]     the test suite (pytest ARGS)
#   ./run.sh MODULE [ARGS]   python -m tflite_isp.MODULE ARGS   (train, data, ...)
set -euo pipefail
cd "$(dirname "$0")"
VENV=${TFLITE_ISP_VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

stamp="$VENV/.installed-$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "setting up $VENV (pinned dependencies from pyproject.toml) ..." >&2
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
        || { echo "error: Python 3.11 is required (found $("$PYTHON" --version))" >&2; exit 2; }
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi

case "${1:-}" in
    test) shift; exec "$VENV/bin/python" -m pytest "$@" ;;
    "" | -*) exec "$VENV/bin/python" -m tflite_isp "$@" ;;
    *) module=$1; shift; exec "$VENV/bin/python" -m "tflite_isp.$module" "$@" ;;
esac
