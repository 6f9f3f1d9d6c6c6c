"""A private sshd on 127.0.0.1 whose "board" is this machine (tests/test_jetson.py, tests/test_stream.py).

Its own host key, keys made for the test, host keys checked (StrictHostKeyChecking yes). Its authorized_keys give
each client key an environment (PermitUserEnvironment): every key gets XDG_CACHE_HOME (the board's file cache lands
in the test's folder); the key of the ``board-tegra`` alias also gets a PATH that starts with a fake ``tegrastats``.
"""
import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from components import missing

SSHD = "/usr/sbin/sshd"
ORIN_LINE = ("{date} RAM {ram}/7620MB (lfb 4x2MB) SWAP 0/3810MB (cached 0MB) CPU [12%@1479,8%@1479,off,off] "
             "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305,305] cpu@52.9C/53.1C gpu@50.2C "
             "VDD_IN {vin}mW/5000mW/6000mW VDD_CPU_GPU_CV 900mW/900mW/900mW VDD_SOC 1200mW/1200mW/1200mW")
FAKE_TEGRASTATS = """#!/bin/sh
# fake NVIDIA tegrastats: an Orin Nano line (JetPack 7 style) every 0.1 s until killed
echo "$$ $*" > "{root}/tegrastats.call"
i=0
while :; do
  echo "{line}"
  i=$((i + 1))
  sleep 0.1
done
""".replace("{line}", ORIN_LINE.format(date="$(date '+%m-%d-%Y %H:%M:%S')", ram="$((2000 + i))",
                                       vin="$((5000 + 100 * i))"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tflite_isp-test", "-f", str(path)],
                   check=True, timeout=30)
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A private sshd on 127.0.0.1 and an ssh config with aliases: board, board-tegra, board-badkey, board-closed."""
    if not Path(SSHD).is_file() or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        missing(f"{SSHD}, ssh or ssh-keygen is not installed (apt-get install openssh-server openssh-client)")
    root = tmp_path_factory.mktemp("sshd")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir, made at boot normally
    host_key = _keygen(root / "host_key")
    keys = {name: root / f"id_{name}" for name in ("board", "tegra", "other")}
    pubs = {name: _keygen(path) for name, path in keys.items()}
    (root / "fakebin").mkdir()
    fake = root / "fakebin" / "tegrastats"
    fake.write_text(FAKE_TEGRASTATS.replace("{root}", str(root)))
    fake.chmod(0o755)
    cache_env = f'environment="XDG_CACHE_HOME={root / "xdg"}"'
    path_env = f'environment="PATH={root / "fakebin"}:/usr/local/bin:/usr/bin:/bin"'
    (root / "authorized_keys").write_text(f"{cache_env} {pubs['board']}\n{cache_env},{path_env} {pubs['tegra']}\n")
    port, closed = _free_port(), _free_port()
    (root / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {root / 'host_key'}\nPidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        "PermitUserEnvironment PATH,XDG_CACHE_HOME\n")
    (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}\n")
    common = (f"  HostName 127.0.0.1\n  User {getpass.getuser()}\n  UserKnownHostsFile {root / 'known_hosts'}\n"
              "  StrictHostKeyChecking yes\n  IdentitiesOnly yes\n  IdentityAgent none\n")
    (root / "ssh_config").write_text("".join(
        f"Host {alias}\n  Port {p}\n  IdentityFile {keys[key]}\n{common}"
        for alias, key, p in (("board", "board", port), ("board-tegra", "tegra", port),
                              ("board-badkey", "other", port), ("board-closed", "board", closed))))
    log = open(root / "sshd.log", "w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"sshd did not start: {(root / 'sshd.log').read_text()[-2000:]}")
            time.sleep(0.05)
    yield {"root": root, "config": str(root / "ssh_config"), "cache": root / "xdg" / "tflite_isp" / "board"}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
