"""The workspace `jupyter agnes quickstart` serves: shipped notebooks copied once, user edits kept."""

from __future__ import annotations

from pathlib import Path

from jupyter_agnes.workspace import prepare_workspace, shipped_notebooks, shipped_notebooks_dir

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ["01-getting-started.ipynb", "02-ask-agnes.ipynb", "03-rest-api-with-pats.ipynb",
           "dashboards/sales.ipynb"]


def test_a_source_checkout_ships_its_own_notebooks():
    assert shipped_notebooks_dir() == REPO / "notebooks"
    assert shipped_notebooks(REPO / "notebooks") == SHIPPED  # no conftest.py, no .cfg


def test_first_run_copies_every_shipped_notebook(tmp_path):
    ws = prepare_workspace(tmp_path / "data")
    assert ws.path == tmp_path / "data" / "workspace"
    assert list(ws.copied) == SHIPPED
    for rel in SHIPPED:
        assert (ws.path / rel).read_bytes() == (REPO / "notebooks" / rel).read_bytes()
    assert sorted(p.name for p in ws.path.iterdir()) == [*SHIPPED[:3], "dashboards"]


def test_second_run_keeps_edits_and_copies_only_what_is_missing(tmp_path):
    data = tmp_path / "data"
    ws = prepare_workspace(data)
    edited = ws.path / "01-getting-started.ipynb"
    edited.write_text("my own notes")
    (ws.path / "dashboards" / "sales.ipynb").unlink()
    (ws.path / "mine.ipynb").write_text("kept too")

    again = prepare_workspace(data)
    assert again.copied == ("dashboards/sales.ipynb",)
    assert edited.read_text() == "my own notes"
    assert (ws.path / "mine.ipynb").read_text() == "kept too"
    assert prepare_workspace(data).copied == ()


def test_hidden_files_and_other_files_are_not_copied(tmp_path):
    shipped = tmp_path / "shipped"
    (shipped / ".ipynb_checkpoints").mkdir(parents=True)
    (shipped / ".ipynb_checkpoints" / "a-checkpoint.ipynb").write_text("{}")
    (shipped / ".hidden.ipynb").write_text("{}")
    (shipped / "conftest.py").write_text("")
    (shipped / "a.ipynb").write_text("{}")
    ws = prepare_workspace(tmp_path / "data", shipped)
    assert ws.copied == ("a.ipynb",)
    assert sorted(p.name for p in ws.path.iterdir()) == ["a.ipynb"]


def test_a_symlink_in_the_workspace_is_left_alone(tmp_path):
    data = tmp_path / "data"
    (data / "workspace").mkdir(parents=True)
    (data / "workspace" / "01-getting-started.ipynb").symlink_to(tmp_path / "nowhere")
    ws = prepare_workspace(data)
    assert "01-getting-started.ipynb" not in ws.copied
    assert not (tmp_path / "nowhere").exists()  # not written through the link
