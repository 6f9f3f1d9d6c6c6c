"""The built wheel carries the built-in recipes: they load from an installed package, not a checkout."""
import subprocess
import sys

from conftest import REPO


def test_wheel_ships_builtin_recipes(tmp_path):
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(wheel_dir), str(REPO)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheel_dir.glob("tflite_isp-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    probe = ("import tflite_isp, tflite_isp.nets.recipes as r, tflite_isp.devices.board as b; "
             "print(tflite_isp.__file__); print(' '.join(r.builtin_names())); "
             "print(r.load_recipe('sid_unet').input.order); print(len(b.program('runner')) > 0)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    where, names, order, shipped = out.stdout.splitlines()
    assert shipped == "True"  # the programs run on a board are package data
    assert where.startswith(str(site))  # the installed copy, not the checkout
    assert {"smallnet", "sid_unet", "punet", "csanet"} <= set(names.split())
    assert order == "('R', 'Gr', 'B', 'Gb')"
