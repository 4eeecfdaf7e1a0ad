import pytest
from tests.test_step import *  # noqa

@pytest.fixture(autouse=True)
def gates(monkeypatch):
    monkeypatch.setattr("linesweep.run.step_layers.LARGE", 0)
