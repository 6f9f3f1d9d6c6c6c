"""The adb edge: every call to the ``adb`` binary goes through here, each with a timeout.

``adb push`` takes paths as arguments (no shell in between), while ``adb shell`` joins its arguments into one
command line for the device's shell: commands are given here as argument lists and quoted for that shell, so
paths with spaces or quotes arrive intact.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
from dataclasses import dataclass

from tflite_isp.core.errors import UserError

STATE_HELP = {
    "unauthorized": "accept the 'Allow USB debugging?' prompt on the phone, then retry",
    "offline": "reconnect the cable or run 'adb reconnect'",
    "no permissions": "the udev rules do not let this user open it (see 'adb devices' / Android's udev rules)",
    "recovery": "boot the phone into Android",
    "sideload": "boot the phone into Android",
    "bootloader": "boot the phone into Android",
    "authorizing": "wait for the device to finish authorising, then retry",
    "connecting": "wait for the device to connect, then retry",
}


@dataclass(frozen=True)
class Device:
    """One line of ``adb devices -l``."""

    serial: str
    state: str
    model: str | None = None
    product: str | None = None
    device: str | None = None
    transport_id: str | None = None

    @property
    def ready(self) -> bool:
        return self.state == "device"

    def describe(self) -> str:
        return f"{self.serial} ({self.model or self.device or 'unknown model'}, {self.state})"


def parse_devices(text: str) -> list:
    """The devices listed by ``adb devices -l`` (daemon start-up chatter and the header skipped)."""
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or line.startswith(("*", "List of devices", "adb ")):
            continue
        serial, state, props = words[0], [], {}
        for word in words[1:]:
            key, eq, value = word.partition(":")
            if eq and key in ("usb", "model", "product", "device", "transport_id"):
                props[key] = value
            elif not props:
                state.append(word)  # "no permissions (user ... is not in the plugdev group); see [...]" spans words
        state_text = " ".join(state)
        state_text = "no permissions" if state_text.startswith("no permissions") else state_text
        found.append(Device(serial, state_text, props.get("model"), props.get("product"), props.get("device"),
                            props.get("transport_id")))
    return found


def quote_command(argv) -> str:
    """One command line for the device's shell (mksh/toybox sh): every argument single-quoted when needed."""
    return " ".join(shlex.quote(str(a)) for a in argv)


@dataclass(frozen=True)
class Result:
    argv: tuple
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + ("\n" + self.stderr if self.stderr else "")


class Adb:
    """``adb [-s SERIAL] ...`` with a timeout on every call; failures become one-line UserErrors."""

    def __init__(self, executable: str = "adb", serial: str | None = None, timeout: float = 600):
        self.executable, self.serial, self.timeout = executable, serial, timeout

    def on(self, serial: str) -> Adb:
        return Adb(self.executable, serial, self.timeout)

    @property
    def where(self) -> str:
        return f"adb:{self.serial}" if self.serial else "adb"

    def run(self, *args, timeout: float | None = None, check: bool = True) -> Result:
        argv = (self.executable, *(("-s", self.serial) if self.serial else ()), *map(str, args))
        limit = timeout or self.timeout
        try:  # own process group: a timeout kills adb and anything it started, so no pipe stays open
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                    text=True, errors="replace", start_new_session=True)
        except FileNotFoundError:
            raise UserError(f"{self.executable}: adb not found (install Android platform-tools, e.g. Debian's "
                            "'adb' package, or pass --adb PATH)") from None
        try:
            stdout, stderr = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise UserError(f"{self.where}: 'adb {' '.join(argv[1:])[:120]}' did not finish in {limit:g} s") from None
        result = Result(argv, proc.returncode, stdout, stderr)
        if check and proc.returncode != 0:
            last = (stderr.strip() or stdout.strip() or "no output").splitlines()[-1]
            raise UserError(f"{self.where}: 'adb {' '.join(map(str, args))[:120]}' failed (exit {proc.returncode}: "
                            f"{last})")
        return result

    # --- devices -----------------------------------------------------------------------------------------------
    def devices(self) -> list:
        return parse_devices(Adb(self.executable, None, min(self.timeout, 60)).run("devices", "-l").stdout)

    def ready_device(self, serial: str | None = None) -> Device:
        """The device to use: ``serial``, else the only one attached; refuses unusable states with the fix."""
        devices = self.devices()
        if serial is None:
            if not devices:
                raise UserError("adb: no device attached (adb devices -l lists none): connect a phone with USB "
                                "debugging on")
            if len(devices) > 1:
                raise UserError(f"adb: {len(devices)} devices attached ({', '.join(d.serial for d in devices)}): "
                                "choose one with --serial")
            serial = devices[0].serial
        match = [d for d in devices if d.serial == serial]
        if not match:
            listed = ", ".join(d.describe() for d in devices) or "none"
            raise UserError(f"adb:{serial}: no such device attached (attached: {listed})")
        device = match[0]
        if not device.ready:
            raise UserError(f"adb:{serial}: device is {device.state}: {STATE_HELP.get(device.state, 'not usable')}")
        return device

    # --- files and commands --------------------------------------------------------------------------------------
    def push(self, local, remote: str, timeout: float | None = None) -> Result:
        return self.run("push", str(local), remote, timeout=timeout)

    def shell(self, argv, timeout: float | None = None, check: bool = True) -> Result:
        """Run ``argv`` on the device; its exit status comes back (adb's shell protocol v2)."""
        return self.run("shell", quote_command(argv), timeout=timeout, check=check)

    def shell_line(self, line: str, timeout: float | None = None, check: bool = True) -> Result:
        """A command line already quoted for the device's shell (pipes, ``&&``)."""
        return self.run("shell", line, timeout=timeout, check=check)


__all__ = ["Device", "parse_devices", "quote_command", "Result", "Adb", "STATE_HELP"]
