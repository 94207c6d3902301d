"""Name → checkpoint resolution for shipped models, run folders and plain files."""

from __future__ import annotations

import pytest

from medseg.core import ModelError
from medseg.models import _shipped, list_shipped_models, resolve_model_path


def test_run_folder_prefers_best_then_last(tmp_path):
    (tmp_path / "checkpoint_last.pt").write_bytes(b"x")
    assert resolve_model_path(tmp_path).name == "checkpoint_last.pt"
    (tmp_path / "checkpoint_best.pt").write_bytes(b"x")
    assert resolve_model_path(tmp_path).name == "checkpoint_best.pt"


def test_file_is_returned_as_is(tmp_path):
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"x")
    assert resolve_model_path(str(ckpt)) == ckpt


def test_empty_folder_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="neither"):
        resolve_model_path(tmp_path)


def test_unknown_name_lists_shipped_models():
    with pytest.raises(ModelError, match="shipped models"):
        resolve_model_path("no-such-model")


def test_shipped_name_resolves(tmp_path, monkeypatch):
    (tmp_path / "demo-net").mkdir()
    (tmp_path / "demo-net" / "checkpoint.pt").write_bytes(b"x")
    monkeypatch.setattr(_shipped, "SHIPPED_MODELS_DIR", tmp_path)
    assert list_shipped_models() == ["demo-net"]
    assert resolve_model_path("demo-net") == tmp_path / "demo-net" / "checkpoint.pt"
