"""Where a name points: a local folder, a hub id, and whether the Hugging Face hub is reachable.

`datasets` and `transformers` retry an unreachable hub for 25-50 s before they fail, and they
send a mistyped local folder shaped like ``org/name`` to the hub as well. These helpers decide
both up front, cheaply and without network calls beyond one short probe per process, so callers
can fail at once with a message that says what to pass. Only the standard library is imported
here (``huggingface_hub`` lazily, for its cache location); ``oreo_agents`` uses this module too.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

# What huggingface_hub accepts as a repo id: "name" or "org/name" (no "..", no "--").
_REPO_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+$")
_TRUE = {"1", "ON", "YES", "TRUE"}
_FALSE = {"0", "OFF", "NO", "FALSE"}
# Seconds the probe may take in all (DNS included, hence the thread): a reachable hub answers
# a HEAD far sooner, and an unreachable one would otherwise cost the libraries' retries.
PROBE_TIMEOUT = 2.0

_offline: bool | None = None  # the probe's answer, cached for the process


def looks_local(name: str) -> bool:
    """Whether ``name`` can only mean a local path, never a hub id.

    True for names that start with ``.``, ``/``, ``~`` or a drive, contain more than the one
    ``/`` of ``org/name`` (or a Windows separator), or whose first part is an existing local
    folder (``ck/polcy`` beside ``ck/policy``). An existing path is local too.
    """
    if os.path.exists(name):
        return True
    if name.startswith((".", "/", "~", os.sep)) or re.match(r"^[A-Za-z]:", name):
        return True
    if (os.altsep and os.altsep in name) or (os.sep != "/" and os.sep in name):
        return True
    if not _REPO_ID.match(name) or ".." in name or "--" in name:
        return True
    parent = os.path.dirname(name)
    return bool(parent) and os.path.isdir(parent)


def hub_offline() -> bool:
    """Whether the Hugging Face hub is out of reach; when it is, put the libraries offline.

    ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) set to a true value means offline and a
    false value means online, without a probe. Unset, one HEAD request to ``HF_ENDPOINT``
    (proxies honoured) decides, at most `PROBE_TIMEOUT` seconds, once per process. An
    unreachable hub sets ``HF_HUB_OFFLINE=1`` so `datasets` and `transformers` read their cache
    instead of retrying.
    """
    global _offline
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        value = os.environ.get(var, "").strip().upper()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    if _offline is None:
        _offline = not _reach_hub()
        if _offline:
            go_offline()
    return _offline


def go_offline() -> None:
    """Set ``HF_HUB_OFFLINE=1``, also in `huggingface_hub` and `datasets` if already imported
    (both read the variable once, at import)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    config = sys.modules.get("datasets.config")
    if config is not None:
        config.HF_HUB_OFFLINE = config.HF_DATASETS_OFFLINE = True


def _reach_hub() -> bool:
    """One HEAD request to the hub endpoint; any HTTP answer (even an error status) is reach."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    answered: list[bool] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(
                urllib.request.Request(endpoint, method="HEAD"), timeout=PROBE_TIMEOUT
            ).close()
            answered.append(True)
        except urllib.error.HTTPError:
            answered.append(True)
        except (OSError, ValueError):
            answered.append(False)

    # A daemon thread, because a stuck DNS lookup ignores the socket timeout.
    thread = threading.Thread(target=probe, daemon=True, name="oreo-hub-probe")
    thread.start()
    thread.join(PROBE_TIMEOUT)
    return bool(answered and answered[0])


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache (``HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``)."""
    try:
        from huggingface_hub import constants
    except ImportError:  # without huggingface_hub nothing can be cached; the default is moot
        return Path(os.environ.get("HF_HUB_CACHE", "~/.cache/huggingface/hub")).expanduser()
    return Path(constants.HF_HUB_CACHE)


def in_hub_cache(repo_id: str, repo_type: str = "model", cache_dir: str | None = None) -> bool:
    """Whether the hub cache holds any snapshot of ``repo_id`` (the ``models--org--name``
    layout of huggingface_hub's cache). False means a load with the hub offline must fail."""
    root = Path(cache_dir).expanduser() if cache_dir else hub_cache_dir()
    folder = root / f"{repo_type}s--{repo_id.replace('/', '--')}" / "snapshots"
    return folder.is_dir() and any(folder.iterdir())


def dataset_maybe_cached(repo_id: str) -> bool:
    """Whether `datasets` might load ``repo_id`` offline: a hub-cache snapshot, or a prepared
    copy in ``HF_DATASETS_CACHE`` (named ``org___name`` in snake case). Errs towards True."""
    if in_hub_cache(repo_id, "dataset"):
        return True
    try:
        from huggingface_hub import constants

        home = Path(constants.HF_HOME)
    except ImportError:
        home = Path("~/.cache/huggingface").expanduser()
    root = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets")).expanduser()
    org, _, name = repo_id.rpartition("/")
    want = name.lower().replace("_", "")
    prefix = f"{org.lower()}___" if org else ""
    return root.is_dir() and any(
        d.name.lower().startswith(prefix) and d.name.lower()[len(prefix) :].replace("_", "") == want
        for d in root.iterdir()
    )
