"""A real PostgreSQL server for a test: Debian's binaries, ``initdb`` in a temporary folder, listening on
127.0.0.1 only, stopped and removed afterwards. As root the server runs as Debian's ``postgres`` user."""
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from components import missing


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(argv: list) -> list:
    """initdb and postgres refuse to run as root: run them as ``postgres`` then."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@contextlib.contextmanager
def server(database: str = "search"):
    """Yield the URL ``postgresql://postgres@127.0.0.1:PORT/DATABASE`` of a fresh server."""
    bindir = _bindir()
    if bindir is None:
        missing("Debian's postgresql (apt-get install postgresql; ./run.sh test installs it as root)")
    folder = Path(tempfile.mkdtemp(prefix="tflite_isp_pg_"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", _free_port()
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    try:
        subprocess.run(_as_server_user([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                                        "-E", "UTF8", "--no-sync"]), **run)
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w",
                                        "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off",
                                        "start"]), **run)
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database],
                       **run)
        yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                                            "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
