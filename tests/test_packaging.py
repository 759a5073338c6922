"""tweetmill installed from its wheel, as in a cluster image or on Dataflow workers: the shipped models come along,
and stages pickled by a driver whose install lives elsewhere (as Spark ships them to executors) find them too."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "flows", "transforms", "expectations")

DRIVER = """
import pickle
import sys
import transforms
from transforms.stages.langid import LanguageId, LanguageIdConfig
from transforms.stages.toxicity import Toxicity, ToxicityConfig

assert transforms.__file__.startswith(sys.argv[1]), transforms.__file__
with open(sys.argv[2], "wb") as f:
    pickle.dump([LanguageId(LanguageIdConfig()), Toxicity(ToxicityConfig())], f)
"""

PROBE = """
import pickle
import sys
import pyarrow as pa
import transforms
from transforms.stages.langid import LanguageId, LanguageIdConfig
from transforms.stages.toxicity import Toxicity, ToxicityConfig

assert transforms.__file__.startswith(sys.argv[1]), transforms.__file__
with open(sys.argv[2], "rb") as f:
    shipped = pickle.load(f)
for stages in ([LanguageId(LanguageIdConfig()), Toxicity(ToxicityConfig())], shipped):
    texts = pa.table({"text": ["shut up you stupid idiot, nobody cares what you think",
                               "lovely walk by the river this morning"]})
    for stage in stages:
        stage.ensure_setup()
        added = stage.annotate(texts)  # the stage's own columns
        for name in added.column_names:
            texts = texts.append_column(name, added[name])
    print(texts.column("lang").to_pylist(), texts.column("is_toxic").to_pylist())
"""


@pytest.mark.slow
def test_wheel_carries_the_models_and_the_stages_load_them(tmp_path):
    source = tmp_path / "src"  # built from a copy: the build leaves build/ and *.egg-info behind
    source.mkdir()
    for name in SOURCES:
        src = REPO / name
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(src, source / name, ignore=ignore) if src.is_dir() else shutil.copy2(src, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("tweetmill-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for model in ("toxicity/toxicity.ftz", "toxicity/metrics.json", "langid/supplement.ftz", "langid/metrics.json"):
        assert f"transforms/models/{model}" in names, model

    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True,
                   capture_output=True, timeout=300)

    def python(script, path, *args):
        env = {"PYTHONPATH": str(path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        out = subprocess.run([sys.executable, "-c", script, str(path), *args], capture_output=True, text=True,
                             cwd=tmp_path, env=env, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.strip().splitlines()

    # A driver pickles stages with the default (packaged) models from its own tree, which then is gone: a worker
    # must find the models in its own install.
    pickled = tmp_path / "stages.pkl"
    python(DRIVER, source, str(pickled))
    shutil.rmtree(source)
    assert python(PROBE, site, str(pickled)) == ["['en', 'en'] [True, False]"] * 2
