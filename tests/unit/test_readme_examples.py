"""README's "Bring your own saga" files: the fast check (the module imports and its app passes
the start-up checks); tests/user_project runs the same files in an installed project."""

import re
import sys
from pathlib import Path

from saga_outbox import load_app

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- byo-file: (\S+) -->\n```(?:python|json)\n(.*?)```", re.S)


def test_readme_byo_app_is_complete(tmp_path, monkeypatch):
    files = dict(BLOCK.findall(ROOT.joinpath("README.md").read_text()))
    assert {"myshop/sagas.py", "cdk/app.py"} <= set(files)
    package = tmp_path / "readme_myshop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "sagas.py").write_text(files["myshop/sagas.py"])
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        app = load_app("readme_myshop.sagas:app")
    finally:
        sys.modules.pop("readme_myshop.sagas", None)
        sys.modules.pop("readme_myshop", None)
    assert [w.name for w in app.workflows] == ["RoomSaga"]
    assert len(app.migrations) == 1
    assert "myshop.sagas:app" in files["cdk/app.py"]


def test_readme_names_the_two_commands():
    readme = ROOT.joinpath("README.md").read_text()
    assert "make demo" in readme and "make test" in readme
