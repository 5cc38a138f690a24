"""Every registered id passes Gymnasium's checker; plug-ins appear through the entry point."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import oreo_envs

# Generated TextWorld games are kept between runs here (a few seconds to make).
_TW_CACHE = os.path.join(os.environ.get("TMPDIR", "/tmp"), "oreo-test-textworld")

# Offline constructor arguments for each id (the hub-backed ids get a local file). An id added
# without an entry here is checked with no arguments, so it must then work offline by default.
OFFLINE_KWARGS = {
    "oreo/GSM8K-v0": lambda files: {"path": str(files["gsm8k"])},
    "oreo/MATH-v0": lambda files: {"path": str(files["math"])},
    "oreo/GSMSymbolic-v0": lambda files: {"size": 20},
    "oreo/ReasoningGym-v0": lambda files: {"size": 20},
    # The engine is an optional extra: skip (inside the test) when it is absent.
    "oreo/ALFWorld-v0": lambda files: pytest.importorskip("alfworld") and {"split": "bundled"},
    "oreo/TextWorld-v0": lambda files: (
        pytest.importorskip("textworld")
        and {"generate": "tw-coin_collector", "num_games": 2, "cache_dir": _TW_CACHE}
    ),
}


@pytest.fixture
def files(gsm8k_file, math_file):
    return {"gsm8k": gsm8k_file, "math": math_file}


def test_list_envs_has_every_builtin_id_with_a_description():
    listed = dict(oreo_envs.list_envs())
    assert set(OFFLINE_KWARGS) <= set(listed)
    assert all(desc and "\n" not in desc for desc in listed.values())


@pytest.mark.parametrize("env_id", [env_id for env_id, _ in oreo_envs.list_envs()])
@pytest.mark.parametrize("granularity", ["response", "step"])
def test_check_env(env_id, granularity, files):
    kwargs = OFFLINE_KWARGS.get(env_id, lambda f: {})(files)
    if granularity == "step":
        if "MathEnv" not in str(gymnasium.spec(env_id).entry_point):
            pytest.skip("single-response env")
        kwargs["granularity"] = "step"
    env = gymnasium.make(env_id, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning is a failure here
        check_env(env.unwrapped)
    env.close()


@pytest.mark.parametrize("env_id", ["oreo/GSMSymbolic-v0", "oreo/ReasoningGym-v0"])
def test_same_seed_same_task_sequence(env_id):
    def sequence(seed):
        env = gymnasium.make(env_id, size=50)
        ids = [env.reset(seed=seed)[1]["task_id"]]
        ids += [env.reset()[1]["task_id"] for _ in range(9)]
        return ids

    assert sequence(1) == sequence(1)
    assert sequence(1) != sequence(2)


def test_unknown_id_is_a_gymnasium_error():
    with pytest.raises(gymnasium.error.Error):
        gymnasium.make("oreo/Nope-v0")


def test_entry_point_plugin_is_listed_and_makeable(tmp_path):
    """An installed distribution declaring an `oreo.envs` entry point, seen by a fresh process."""
    (tmp_path / "toy_plugin.py").write_text(
        textwrap.dedent(
            """
            import oreo_envs

            class CountEnv(oreo_envs.TextEnv):
                def __init__(self, render_mode=None):
                    super().__init__(["1", "2"], render_mode=render_mode)

                def _start(self, task_id):
                    return f"type {task_id}", {}

                def _act(self, action):
                    ok = action.strip() == self.task_id
                    return "", float(ok), True, {"success": ok}

            def register_envs():
                oreo_envs.register(
                    "toy/Count-v0", CountEnv, description="type the number you see",
                    max_episode_steps=1,
                )
            """
        )
    )
    dist = tmp_path / "toy_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[oreo.envs]\ntoy = toy_plugin:register_envs\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    code = (
        "import gymnasium, oreo_envs\n"
        "print(dict(oreo_envs.list_envs())['toy/Count-v0'])\n"
        "e = gymnasium.make('toy/Count-v0'); e.reset(options={'task_id': '2'})\n"
        "print(e.step('2')[1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["type the number you see", "1.0"]
    cli = subprocess.run(
        [sys.executable, "-m", "oreo_cli", "envs"], capture_output=True, text=True, env=env
    )
    assert "toy/Count-v0" in cli.stdout


def test_broken_plugin_warns_and_does_not_break_import(tmp_path):
    dist = tmp_path / "broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[oreo.envs]\nbroken = no_such_module:go\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gymnasium, oreo_envs; gymnasium.make('oreo/GSMSymbolic-v0')",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "plug-in 'broken'" in out.stderr and "failed to load" in out.stderr
