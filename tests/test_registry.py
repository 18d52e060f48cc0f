"""The registry: entry-point discovery, lazy loading, broken and duplicate plugins, autoload switch.

Third-party packages are simulated the way an installer leaves them: a ``*.dist-info`` folder
with ``METADATA`` and ``entry_points.txt`` plus a module, on ``sys.path``. ``importlib.metadata``
reads them exactly as it reads a pip-installed package.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mi_estimators as mie
from mi_estimators import registry

BUILTIN_BOUNDS = {"dv", "mine", "nwj", "tuba", "jsd", "infonce", "smile", "interpolated", "mixture_nce"}


def make_dist(root: Path, dist: str, module: str, source: str, entry_points: dict[str, dict[str, str]]) -> None:
    """Write an 'installed' distribution: module source + dist-info with entry points."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = []
    for group, eps in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


GOOD_PLUGIN = """
    import torch

    class MeanGap:
        '''Toy third-party bound: mean positive score minus mean negative score (no base class).'''
        def __init__(self, scale=1.0):
            self.scale = scale
        def __call__(self, scores):
            n = scores.shape[0]
            off = ~torch.eye(n, dtype=torch.bool)
            return self.scale * (scores.diagonal().mean() - scores[off].mean())
        def loss(self, scores):
            return -self(scores)
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fresh 'site-packages' on sys.path; the registry forgets what it saw before and after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(registry.AUTOLOAD_ENV, raising=False)
    registry.refresh()
    yield tmp_path
    for mod in [m for m in sys.modules if m.startswith("thirdparty_")]:
        del sys.modules[mod]
    registry.refresh()


def test_builtins_registered_through_entry_points():
    assert BUILTIN_BOUNDS <= set(mie.available())
    assert mie.available() == sorted(mie.available())
    for name in BUILTIN_BOUNDS:
        entry = registry._all("bounds")[name]
        assert entry.distribution == "mi-estimators"  # dogfooded: our own pyproject declares them
        assert entry.entry_point is not None


def test_get_returns_a_bound_with_loss():
    bound = mie.get("infonce")
    assert callable(bound) and callable(bound.loss)


def test_available_rejects_unknown_kind_and_filters():
    with pytest.raises(ValueError, match="unknown registry kind 'bound'.*bounds"):
        mie.available("bound")
    assert mie.available("bounds", "n*") == ["nwj"]


def test_unknown_name_names_closest_match_and_lists_available():
    with pytest.raises(mie.UnknownNameError) as err:
        mie.get("infonc")
    msg = str(err.value)
    assert "did you mean 'infonce'?" in msg
    for name in BUILTIN_BOUNDS:
        assert name in msg


def test_third_party_bound_found_without_code_change(site):
    make_dist(site, "thirdparty-good", "thirdparty_good", GOOD_PLUGIN,
              {"mi_estimators.bounds": {"meangap": "thirdparty_good:MeanGap"}})
    registry.refresh()
    assert "meangap" in mie.available()
    assert "thirdparty_good" not in sys.modules  # discovered, not imported
    import torch

    bound = mie.get("meangap", scale=2.0)
    scores = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    assert float(bound(scores)) == pytest.approx(4.0)
    assert registry._all("bounds")["meangap"].label == "thirdparty-good[meangap]"


def test_broken_plugin_warns_and_reraises_with_cause(site):
    make_dist(site, "thirdparty-broken", "thirdparty_broken",
              "raise ImportError('needs libfoo >= 2')\n",
              {"mi_estimators.bounds": {"broken": "thirdparty_broken:Bound"}})
    registry.refresh()
    assert "broken" in mie.available()  # listing does not import
    with pytest.warns(RuntimeWarning, match=r"thirdparty-broken\[broken\].*needs libfoo >= 2"):
        names = [e.name for e, _ in mie.entries("bounds")]
    assert "broken" not in names and "infonce" in names
    with pytest.raises(mie.PluginLoadError, match=r"thirdparty-broken\[broken\]") as err:
        mie.get("broken")
    assert isinstance(err.value.__cause__, ImportError)
    assert "libfoo" in str(err.value.__cause__)


def test_broken_plugin_never_breaks_import(tmp_path):
    make_dist(tmp_path, "thirdparty-broken", "thirdparty_broken", "1 / 0\n",
              {"mi_estimators.bounds": {"broken": "thirdparty_broken:X"}})
    code = "import mi_estimators as m; print('broken' in m.available(), m.get('infonce') is not None)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "PATH": ""}, check=True)
    assert out.stdout.split() == ["True", "True"]


def test_two_packages_claiming_one_name_warn_naming_both(site):
    for dist in ("thirdparty-a", "thirdparty-b"):
        mod = dist.replace("-", "_")
        make_dist(site, dist, mod, GOOD_PLUGIN, {"mi_estimators.bounds": {"gap": f"{mod}:MeanGap"}})
    registry.refresh()
    both = r"thirdparty-a\[gap\].*thirdparty-b\[gap\]|thirdparty-b\[gap\].*thirdparty-a\[gap\]"
    with pytest.warns(RuntimeWarning, match=both):
        assert "gap" in mie.available()


def test_builtin_wins_over_a_plugin_claiming_its_name(site):
    make_dist(site, "thirdparty-shadow", "thirdparty_shadow", GOOD_PLUGIN,
              {"mi_estimators.bounds": {"infonce": "thirdparty_shadow:MeanGap"}})
    registry.refresh()
    with pytest.warns(RuntimeWarning, match=r"thirdparty-shadow\[infonce\]"):
        entry = registry._all("bounds")["infonce"]
    assert entry.distribution == "mi-estimators"


def test_autoload_switch_hides_third_party_but_keeps_builtins(site, monkeypatch):
    make_dist(site, "thirdparty-good", "thirdparty_good", GOOD_PLUGIN,
              {"mi_estimators.bounds": {"meangap": "thirdparty_good:MeanGap"}})
    registry.refresh()
    assert "meangap" in mie.available()
    monkeypatch.setenv(registry.AUTOLOAD_ENV, "1")
    names = mie.available()
    assert "meangap" not in names and BUILTIN_BOUNDS <= set(names)
    monkeypatch.setenv(registry.AUTOLOAD_ENV, "0")
    assert "meangap" in mie.available()


def test_register_in_process_decorator_overwrite_and_unregister():
    try:
        @mie.register("toy_encoder", kind="encoders")
        def toy(in_channels, image_size, **options):
            return ("toy", in_channels, image_size, options)

        assert "toy_encoder" in mie.available("encoders")
        assert mie.get("toy_encoder", kind="encoders", in_channels=1, image_size=28, width=3) == \
            ("toy", 1, 28, {"width": 3})
        with pytest.raises(ValueError, match="already registered.*overwrite=True"):
            mie.register("toy_encoder", toy, kind="encoders")
        mie.register("toy_encoder", lambda **kw: "v2", kind="encoders", overwrite=True)
        assert mie.get("toy_encoder", kind="encoders") == "v2"
        with pytest.raises(TypeError, match="needs a class or function"):
            mie.register("not_callable", 3)  # type: ignore[arg-type]
    finally:
        mie.unregister("toy_encoder", kind="encoders")
    assert "toy_encoder" not in mie.available("encoders")


def test_cli_list_prints_metadata(capsys):
    from mi_estimators.cli import main

    assert main(["list", "bounds"]) == 0
    out = capsys.readouterr().out
    for name in BUILTIN_BOUNDS:
        assert f"  {name} " in out
    assert "log N" in out  # InfoNCE's ceiling is part of its metadata
