#!/usr/bin/env bash
# tflite_isp launcher: makes the pinned virtual environment (.venv: pyproject.toml + constraints.txt)
# on first use, then
#   ./run.sh                 the default job: embedded data -> train Smallnet -> export FP32, INT8 -> score
#   ./run.sh test [ARGS]     the test suite (pytest ARGS; installs Debian's chromium, adb, openssh-server and
#                            postgresql when root)
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
    # a venv cut off while it was being made has a python but no pip: making it again over itself completes it
    "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi

# Tests use real system tools from Debian: chromium (the report test's headless browser), adb (the Android
# harness with no phone attached), openssh-server (the Jetson harness against an sshd on 127.0.0.1) and
# postgresql (a server the search test starts in a temporary folder: workers sharing one study).
ensure_test_tools() {
    local missing=()
    command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
    command -v adb >/dev/null || missing+=(adb)
    [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
    command -v ssh >/dev/null || missing+=(openssh-client)
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
    [ ${#missing[@]} = 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing Debian packages for the tests: ${missing[*]} ..." >&2
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            "${missing[@]}" >/dev/null; } || {
            echo "error: installing ${missing[*]} failed; the tests need them" >&2
            [ -z "${CI:-}" ] || exit 1
        }
    else
        echo "warning: the tests need Debian's ${missing[*]} (apt-get install ${missing[*]})" >&2
        [ -z "${CI:-}" ] || { echo "error: CI cannot run without them" >&2; exit 1; }
    fi
}

case "${1:-}" in
    test) shift; ensure_test_tools
        "$VENV/bin/ruff" check tflite_isp tests benchmarks
        exec "$VENV/bin/python" -m pytest "$@" ;;
    "" | -*) exec "$VENV/bin/python" -m tflite_isp "$@" ;;
    *) module=$1; shift; exec "$VENV/bin/python" -m "tflite_isp.$module" "$@" ;;
esac
